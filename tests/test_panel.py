"""The panel, driven headless like ipywidgets' own tests: click buttons, set values, read what is shown.

Real pipeline, tiny random models, real sample videos. Runs under ipywidgets 8 and 7.7.1 (Colab's).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import ipywidgets as widgets
import pytest

from vid2vid_widgets import _compat
from vid2vid_widgets._runner import Runner
from vid2vid_widgets.errors import MissingDependencyError
from vid2vid_widgets.models import REGISTRY
from vid2vid_widgets.panel import Vid2VidPanel

from conftest import finish, simulate_upload  # shared test helpers live in conftest.py

SMALL = dict(num_frames=4, num_steps=2, height=32, width=32, caption_frames=2)


def make_panel(tmp_path: Path, **kwargs) -> Vid2VidPanel:
    options = {**SMALL, "output_dir": tmp_path / "out", **kwargs}
    return Vid2VidPanel(models="tiny", **options)


def walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def classes(panel: Vid2VidPanel) -> set:
    return {c for w in walk(panel) for c in getattr(w, "_dom_classes", ())}


def run_json(panel: Vid2VidPanel) -> dict:
    return json.loads((panel.last_result.run_dir / "run.json").read_text())


# -- building and display ------------------------------------------------------------------------

def test_builds_without_loading_models_and_has_the_css_hooks(tmp_path):
    loads = REGISTRY.total_loads
    panel = make_panel(tmp_path)
    assert REGISTRY.total_loads == loads
    assert panel._pipeline is None  # nothing built until the first action
    expected = {"vid2vid-panel", "vid2vid-upload", "vid2vid-path", "vid2vid-load", "vid2vid-info", "vid2vid-input",
                "vid2vid-output", "vid2vid-caption", "vid2vid-caption-button", "vid2vid-generate", "vid2vid-cancel",
                "vid2vid-progress", "vid2vid-status", "vid2vid-error", "vid2vid-history", "vid2vid-seed-used"}
    assert expected <= classes(panel)
    assert panel.upload.accept == "video/*,.mp4,.mov,.mkv,.webm,.avi,.gif,.m4v"
    assert panel.upload.multiple is False
    assert panel.input_video.autoplay is False
    assert panel.output_video.loop is True
    assert _compat.get_titles(panel.settings_box) == ["Settings"]
    assert panel.settings_box.selected_index is None  # collapsed
    assert (panel.seed.disabled, panel.random_seed.value) == (True, True)


def test_a_given_pipeline_is_used_with_its_defaults(tmp_path):
    from vid2vid_widgets.pipeline import Vid2VidPipeline

    pipeline = Vid2VidPipeline(models="tiny", output_dir=tmp_path, num_steps=3, seed=5, caption_frames=3)
    panel = Vid2VidPanel(pipeline)
    assert panel.pipeline is pipeline
    assert (panel.steps.value, panel.seed.value, panel.random_seed.value, panel.caption_frames.value) == (3, 5, False, 3)
    with pytest.raises(TypeError, match="output_dir"):
        Vid2VidPanel(pipeline, output_dir=tmp_path / "elsewhere")
    with pytest.raises(TypeError, match="Unknown panel setting"):
        Vid2VidPanel(models="tiny", num_step=3)


def test_display_sends_a_widget_view(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    panel = make_panel(tmp_path)
    with capture_output() as captured:
        display(panel)
    views = [o.data for o in captured.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert views and views[0]["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.model_id


# -- uploads in both ipywidgets formats ----------------------------------------------------------

def test_upload_parsers_read_both_ipywidgets_formats():
    data = b"\x00\x00\x00\x18ftypmp42 fake"
    v7 = {"clip.mp4": {"metadata": {"name": "clip.mp4", "type": "video/mp4", "size": len(data), "lastModified": 0},
                       "content": data}}
    v8 = ({"name": "clip.mp4", "type": "video/mp4", "size": len(data), "last_modified": 0,
           "content": memoryview(data)},)
    for value in (v7, v8):
        (upload,) = _compat.parse_upload_value(value)
        assert (upload.name, upload.content, upload.type) == ("clip.mp4", data, "video/mp4")
        assert isinstance(upload.content, bytes)
    assert _compat.parse_upload_value({}) == [] and _compat.parse_upload_value(()) == []


def test_upload_loads_previews_and_autocaptions(tmp_path, bikes):
    panel = make_panel(tmp_path)
    data = bikes.read_bytes()
    simulate_upload(panel.upload, "my bikes.mp4", data)
    finish(panel)
    assert panel.error.value == ""
    assert "my bikes.mp4" in panel.info.value and "640x272" in panel.info.value
    assert "10.0 s" in panel.info.value and "25 fps" in panel.info.value and "h264" in panel.info.value
    # The upload was saved (never overwriting) and the widget no longer holds the bytes.
    assert panel.loaded.path.read_bytes() == data
    assert panel.loaded.path.parent == tmp_path / "out" / "uploads"
    assert _compat.parse_upload_value(panel.upload.value) == []
    # The left player shows a small browser preview, not the original file.
    preview = panel.input_video.value
    assert preview[4:8] == b"ftyp" and preview != data
    # Captioned by itself: the caption and the per-frame captions (with times) are there.
    assert panel.caption_text.value.strip()
    labels = [label for label, _ in panel.frame_captions.options]
    assert len(labels) == 1 + SMALL["caption_frames"]
    assert labels[0].startswith("All frames:") and re.match(r"\d+:\d\d\.\d ", labels[1])
    assert panel.frame_captions.value == -1  # the dropdown shows the consensus, not a blank
    assert "Caption ready" in panel.status.value
    # The same file again is stored under a new name.
    simulate_upload(panel.upload, "my bikes.mp4", data)
    finish(panel)
    assert panel.loaded.path.name != "my bikes.mp4" and panel.loaded.path.read_bytes() == data


def test_path_load_without_autocaption_then_caption_button(tmp_path, bunny):
    panel = make_panel(tmp_path, autocaption=False)
    panel.path_text.value = f"  {bunny}  "
    panel.load_button.click()
    finish(panel)
    assert "bigbuckbunny.mp4" in panel.info.value and "1280x720" in panel.info.value
    assert panel.caption_text.value == "" and panel.caption_result is None
    assert "Press Caption" in panel.status.value
    panel.caption_button.click()
    finish(panel)
    assert panel.caption_text.value.strip() and panel.error.value == ""
    # Picking a frame's caption copies it into the text box.
    index = panel.frame_captions.options[-1][1]
    panel.frame_captions.value = index
    panel.use_frame_caption.click()
    assert panel.caption_text.value == panel.caption_result.caption.per_frame[index]


# -- generate, regenerate, progress, seed, notes ------------------------------------------------

def test_edited_caption_is_generated_and_regenerate_reloads_nothing(tmp_path, bikes):
    panel = make_panel(tmp_path)
    panel.load(str(bikes))
    finish(panel)
    blip_caption = panel.caption_text.value
    preview = panel.input_video.value
    seen = []
    panel.progress.observe(lambda c: seen.append((panel.progress.value, panel.progress.max,
                                                  panel.progress_label.value)), names="value")

    panel.caption_text.value = "a red kite over a green hill"
    panel.generate_button.click()
    finish(panel)
    assert panel.error.value == ""
    record = run_json(panel)
    assert record["settings"]["prompt"] == "a red kite over a green hill"
    assert record["caption"]["text"] == blip_caption  # what BLIP said is kept beside the edit
    assert record["settings"]["num_frames"] == 4 and record["settings"]["height"] == 32
    assert panel.output_video.value == panel.last_result.video_path.read_bytes()
    seed = record["settings"]["seed"]
    assert f"<b>{seed}</b>" in panel.seed_used.value and panel.seed.value == seed
    # The bar ended full, after reporting the denoising steps with times.
    assert panel.progress.value == panel.progress.max >= 1
    assert panel.progress_label.value.startswith("Finished in")  # not a stale "Writing the video: 1 of 1"
    assert any(label.startswith("Generating: 2 of 2") and "so far" in label for _, _, label in seen)
    assert "Done in" in panel.status.value and str(panel.last_result.run_dir) in panel.status.value

    loads = REGISTRY.total_loads
    caption_result = panel.caption_result
    panel.caption_text.value = "a blue kite"
    panel.generate_button.click()
    finish(panel)
    assert REGISTRY.total_loads == loads
    assert panel.caption_result is caption_result and panel.input_video.value == preview  # no re-caption/reload
    assert run_json(panel)["settings"]["prompt"] == "a blue kite"
    assert len(panel.history.children) == 2 and len(panel.runs) == 2
    assert "a blue kite" in panel.history.children[0].children[-1].value  # newest first


def test_fixed_seed_repeats_and_notes_are_shown(tmp_path):
    panel = make_panel(tmp_path, autocaption=False)
    panel.caption_text.value = "waves on a beach"
    panel.random_seed.value = False
    assert panel.seed.disabled is False
    panel.seed.value = 1234
    panel.height.value = 36  # not a multiple of 8: corrected, and the person is told
    panel.generate_button.click()
    finish(panel)
    first = panel.last_result
    assert first.seed == 1234 and first.frames.shape[1] == 40
    assert "height 36 is not a multiple of 8" in panel.notes.value
    panel.generate_button.click()
    finish(panel)
    assert panel.last_result.seed == 1234
    assert (panel.last_result.frames == first.frames).all()


def test_empty_caption_gives_a_readable_message(tmp_path):
    panel = make_panel(tmp_path, autocaption=False)
    panel.generate_button.click()
    finish(panel)
    assert "caption is empty" in panel.error.value
    assert "Traceback" not in panel.error.value and panel.output_video.value == b""


# -- cancel, busy, errors ------------------------------------------------------------------------

def test_cancel_mid_run_then_the_panel_still_works(tmp_path):
    panel = make_panel(tmp_path, autocaption=False, num_steps=4)
    assert panel._runner.threaded  # outside Colab: a worker thread, so Cancel can be clicked
    panel.caption_text.value = "a cat on a sofa"
    during = {}
    original = panel._on_progress

    def click_cancel_at_first_step(progress):
        original(progress)
        if progress.stage == "denoise" and not during:
            during.update(generate_disabled=panel.generate_button.disabled,
                          cancel_disabled=panel.cancel_button.disabled,
                          second_start=panel.generate())
            panel.cancel_button.click()

    panel._on_progress = click_cancel_at_first_step
    panel.generate_button.click()
    finish(panel)
    assert during == {"generate_disabled": True, "cancel_disabled": False, "second_start": False}
    assert "Cancelled" in panel.status.value and panel.error.value == ""
    assert panel.output_video.value == b"" and panel.runs == [] and panel.history.children == ()
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())
    assert (panel.generate_button.disabled, panel.cancel_button.disabled) == (False, True)

    panel._on_progress = original
    panel.generate_button.click()
    finish(panel)
    assert panel.error.value == "" and len(panel.runs) == 1 and panel.output_video.value


def test_bad_upload_and_bad_path_keep_everything_and_the_panel_works(tmp_path, bikes):
    panel = make_panel(tmp_path)
    panel.load(str(bikes))
    finish(panel)
    panel.generate()
    finish(panel)
    before = (panel.info.value, panel.input_video.value, panel.caption_text.value, panel.output_video.value,
              panel.loaded)

    simulate_upload(panel.upload, "homework.mp4", b"this is not a video at all" * 100)
    finish(panel)
    assert "homework" in panel.error.value and "#b00020" in panel.error.value
    assert "Traceback" not in panel.error.value
    assert (panel.info.value, panel.input_video.value, panel.caption_text.value, panel.output_video.value,
            panel.loaded) == before

    panel.path_text.value = str(tmp_path / "missing.mp4")
    panel.load_button.click()
    finish(panel)
    assert "missing.mp4" in panel.error.value and panel.loaded is before[-1]

    panel.path_text.value = ""
    panel.load_button.click()
    assert "Type the path" in panel.error.value

    panel.generate_button.click()
    finish(panel)
    assert panel.error.value == "" and len(panel.runs) == 2


def test_unexpected_error_is_one_line_with_the_traceback_in_details(tmp_path, monkeypatch):
    panel = make_panel(tmp_path, autocaption=False)
    panel.caption_text.value = "a bird"

    def broken(*args, **kwargs):
        raise ValueError("the frames went missing")

    monkeypatch.setattr(panel.pipeline, "generate", broken)
    panel.generate_button.click()
    finish(panel)
    assert "Something went wrong: ValueError: the frames went missing" in panel.error.value
    assert "Traceback" not in panel.error.value
    logged = "".join(o.get("text", "") for o in panel.log_output.outputs)
    assert "Traceback" in logged and "the frames went missing" in logged
    assert panel.details.selected_index is None  # collapsed
    assert panel.generate_button.disabled is False


# -- history, sharing, backend, Colab mode --------------------------------------------------------

def test_history_show_download_and_past_runs(tmp_path):
    panel = make_panel(tmp_path, autocaption=False)
    for words in ("first run words", "second run words"):
        panel.caption_text.value = words
        panel.generate()
        finish(panel)
    first, second = panel.runs
    older_row = panel.history.children[1]
    show, link = older_row.children[0], older_row.children[1]
    show.click()
    assert panel.output_video.value == first.video_path.read_bytes() != second.video_path.read_bytes()
    assert str(first.seed) in panel.seed_used.value
    href = re.search(r'href="data:video/mp4;base64,([^"]+)"', link.value).group(1)
    assert base64.b64decode(href) == first.video_path.read_bytes()
    assert 'download="' in link.value

    other = make_panel(tmp_path, autocaption=False)  # a later session, same output folder
    other.past_runs_button.click()
    rows = other.past_runs.children
    assert "2 run(s)" in rows[0].value and len(rows) == 3
    assert "second run words" in rows[1].children[-1].value  # newest first
    rows[2].children[0].click()
    assert other.output_video.value == first.video_path.read_bytes()
    # Past runs send no video until a link is asked for.
    assert "base64" not in "".join(getattr(w, "value", "") for w in walk(other.past_runs) if isinstance(w, widgets.HTML))
    rows[2].children[1].click()
    href = re.search(r'href="data:video/mp4;base64,([^"]+)"', rows[2].children[1].value).group(1)
    assert base64.b64decode(href) == first.video_path.read_bytes()


def test_a_second_panel_shares_the_loaded_models(tmp_path, bikes):
    first = make_panel(tmp_path / "a")
    first.load(str(bikes))
    finish(first)
    first.generate()
    finish(first)
    loads = REGISTRY.total_loads
    second = make_panel(tmp_path / "b")
    second.load(str(bikes))
    finish(second)
    second.generate()
    finish(second)
    assert second.error.value == "" and second.output_video.value
    assert REGISTRY.total_loads == loads


def test_backend_change_rebuilds_the_generator_or_explains(tmp_path, monkeypatch):
    import vid2vid_widgets.generation as generation

    panel = make_panel(tmp_path, autocaption=False)
    pipeline = panel.pipeline
    calls = []
    fake = object()
    monkeypatch.setattr(generation, "make_generator", lambda *a, **k: calls.append((a, k)) or fake)
    panel.backend.value = "modelscope"
    assert pipeline.generator is fake
    assert calls == [(("modelscope", None), {"models": "tiny", "device": pipeline.device, "dtype": pipeline.dtype})]
    # The backend's own preset is shown in the Model dropdown, with its defaults (the original: DDIM)
    # except for the settings given to the panel (SMALL's steps).
    assert panel.model.value == "modelscope-original" and panel.scheduler.value == "ddim"
    assert panel.steps.value == SMALL["num_steps"]

    def missing(*a, **k):
        raise MissingDependencyError("The modelscope backend needs: pip install 'vid2vid-widgets[modelscope]'")

    monkeypatch.setattr(generation, "make_generator", missing)
    panel.backend.value = "diffusers"
    assert "pip install" in panel.error.value
    assert panel.backend.value == "modelscope" and pipeline.generator is fake  # nothing half-changed
    assert panel.model.value == "modelscope-original"


def test_colab_runs_inside_the_click_handler(tmp_path, monkeypatch):
    import vid2vid_widgets._runner as runner_module

    monkeypatch.setattr(runner_module, "in_colab", lambda: True)
    panel = make_panel(tmp_path, autocaption=False)
    assert panel._runner.threaded is False
    assert "Interrupt" in panel.cancel_button.tooltip
    panel.caption_text.value = "a snowy street"
    panel.generate_button.click()  # no wait(): done when the handler returns
    assert not panel.busy and panel.output_video.value and panel.error.value == ""
    assert panel.cancel_button.disabled is True
    # A second click made during that run reaches the kernel the moment it ends: it is dropped,
    # not turned into a second run the person never wanted.
    panel.generate_button.click()
    run_dirs = list((tmp_path / "out" / "runs").iterdir())
    assert len(panel.runs) == 1 and len(run_dirs) == 1, f"a queued click started another run: {run_dirs}"
    panel._runner._ended_at -= 1.0  # a deliberate click a moment later does start a run
    panel.generate_button.click()
    assert len(panel.runs) == 2


def test_runner_runs_one_job_at_a_time():
    runner = Runner(threaded=True)
    import threading

    gate = threading.Event()
    assert runner.start(gate.wait) is True
    assert runner.busy and runner.start(lambda: None) is False
    gate.set()
    assert runner.wait(10) and not runner.busy


def test_the_panel_says_when_its_videos_will_be_noise_or_slow(monkeypatch):
    monkeypatch.delenv("VID2VID_MODELS", raising=False)
    tiny = Vid2VidPanel(models="tiny")
    assert "Tiny random models" in tiny.models_notice.value and "GPU" in tiny.models_notice.value
    monkeypatch.setattr("vid2vid_widgets._compat.cuda_available", lambda: False)
    cpu = Vid2VidPanel()
    assert "No GPU" in cpu.models_notice.value and "minutes" in cpu.models_notice.value
    monkeypatch.setattr("vid2vid_widgets._compat.cuda_available", lambda: True)
    assert Vid2VidPanel().models_notice.value == ""  # real models on a GPU: nothing to warn about
