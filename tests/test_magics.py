"""``%load_ext vid2vid_widgets`` and ``%vid2vid``, run through a real IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from vid2vid_widgets.magics import PANEL_VARIABLE, parse_args
from vid2vid_widgets.panel import Vid2VidPanel

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()


def test_loading_the_extension_twice_is_harmless(shell):
    shell.run_line_magic("load_ext", "vid2vid_widgets")
    shell.run_line_magic("load_ext", "vid2vid_widgets")  # "already loaded": no error, no second copy
    shell.run_line_magic("reload_ext", "vid2vid_widgets")
    assert "vid2vid" in shell.magics_manager.magics["line"]


def test_magic_shows_a_panel_with_the_video_loaded_and_the_options_applied(shell, tmp_path, bikes):
    shell.run_line_magic("load_ext", "vid2vid_widgets")
    line = (f'"{bikes}" --models tiny --seed 7 --steps 2 --frames 4 --height 32 --width 32 '
            f'--negative "blurry, text" --caption-frames 2 --no-autocaption --output-dir "{tmp_path / "out"}"')
    with capture_output() as captured:
        shell.run_line_magic("vid2vid", line)
    panel = shell.user_ns[PANEL_VARIABLE]
    assert isinstance(panel, Vid2VidPanel)
    views = [o.data[WIDGET_VIEW] for o in captured.outputs if WIDGET_VIEW in o.data]
    assert [v["model_id"] for v in views] == [panel.model_id]  # displayed, once
    assert panel.wait(300)
    assert "bikes.mp4" in panel.info.value and panel.input_video.value
    assert panel.caption_text.value == ""  # --no-autocaption
    assert (panel.seed.value, panel.random_seed.value, panel.steps.value, panel.frames.value) == (7, False, 2, 4)
    assert (panel.negative_prompt.value, panel.caption_frames.value) == ("blurry, text", 2)

    panel.caption_text.value = "a train in the snow"
    panel.generate_button.click()
    assert panel.wait(300) and panel.error.value == ""
    assert panel.last_result.seed == 7
    assert panel.last_result.run_dir.parent == tmp_path / "out" / "runs"


def test_bad_options_print_usage_and_show_nothing(shell, capsys):
    shell.run_line_magic("load_ext", "vid2vid_widgets")
    shell.user_ns.pop(PANEL_VARIABLE, None)
    with capture_output() as captured:
        shell.run_line_magic("vid2vid", "--steps many")
    assert not any(WIDGET_VIEW in o.data for o in captured.outputs)
    assert "invalid int value: 'many'" in captured.stderr + capsys.readouterr().err
    assert PANEL_VARIABLE not in shell.user_ns


def test_parse_args_defaults_leave_the_panel_defaults_alone():
    args = parse_args("")
    assert args.path is None and args.autocaption is True and args.seed is None and args.models is None
    assert parse_args("'my clip.mp4' --backend modelscope").path == "my clip.mp4"
