"""The panel's live preview and its variations grid, driven headless (tiny models, real pipeline)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vid2vid_widgets._runner import Runner
from vid2vid_widgets.panel import Vid2VidPanel

from conftest import finish

SMALL = dict(num_frames=4, num_steps=3, height=32, width=32, caption_frames=2, autocaption=False)


@pytest.mark.parametrize("threaded", [True, False], ids=["worker-thread", "inline-colab"])
def test_live_preview_changes_during_a_run_and_can_be_saved(tmp_path, threaded):
    panel = Vid2VidPanel(models="tiny", output_dir=tmp_path, runner=Runner(threaded=threaded), preview_every=1,
                         **SMALL)
    assert panel.preview_every.value == 1 and panel.preview_image.layout.display == "none"
    shown = []
    panel.preview_image.observe(lambda change: shown.append(bytes(change["new"])), names="value")
    panel.caption_text.value = "a green tree in the forest"
    panel.save_previews.value = True
    panel.generate_button.click()
    finish(panel)
    assert panel.error.value == ""
    assert len(shown) == 3 and len(set(shown)) == 3  # one new picture per step
    assert all(png.startswith(b"\x89PNG") for png in shown)
    assert "after step 3 of 3" in panel.preview_label.value
    assert panel.preview_image.layout.display is None  # visible
    record = json.loads((panel.last_result.run_dir / "run.json").read_text())
    assert [p["step"] for p in record["previews"]] == [1, 2, 3]
    assert (panel.last_result.run_dir / record["previews"][-1]["file"]).read_bytes() == shown[-1]

    # 0 turns it off: no picture is sent, none is shown, none is saved.
    panel.preview_every.value = 0
    shown.clear()
    assert panel.generate()  # not a click: inline, a click right after a run is taken as a queued double click
    finish(panel)
    assert shown == [] and panel.preview_image.layout.display == "none"
    assert "previews" not in json.loads((panel.last_result.run_dir / "run.json").read_text())


def test_variations_grid_and_use_this_seed(tmp_path):
    panel = Vid2VidPanel(models="tiny", output_dir=tmp_path, preview_every=0, **SMALL)
    panel.caption_text.value = "people dancing in the city at night"
    panel.variations_count.value = 3
    panel.variations_button.click()
    finish(panel)
    assert panel.error.value == ""
    made = panel.runs[-3:]
    seeds = [run.seed for run in made]
    assert len(set(seeds)) == 3 and len({run.run_dir for run in made}) == 3
    assert len(panel.variations.buttons) == 3 and len(panel.history.children) == 3
    videos = [w for w in _walk(panel.variations) if w.__class__.__name__ == "Video"]
    assert [v.value for v in videos] == [run.video_path.read_bytes() for run in made]
    assert all(f"<b>{seed}</b>" in panel.seed_used.value.replace(", ", "</b>, <b>") for seed in seeds)

    assert panel.random_seed.value is True
    panel.variations.buttons[1].click()  # "Use this seed" under the second video
    assert panel.random_seed.value is False and panel.seed.value == seeds[1]
    assert str(seeds[1]) in panel.status.value
    panel.generate_button.click()
    finish(panel)
    assert panel.last_result.seed == seeds[1]
    # The same video as the variation (a batch of 3 and a video alone differ at most by rounding).
    assert np.abs(panel.last_result.frames.astype(int) - made[1].frames.astype(int)).max() <= 1


def test_variations_refuse_an_empty_caption_at_the_click(tmp_path):
    panel = Vid2VidPanel(models="tiny", output_dir=tmp_path, **SMALL)
    assert panel.generate_variations() is False
    assert "caption is empty" in panel.error.value and not panel.busy


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)
