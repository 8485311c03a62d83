"""Issue 8, part 1: strange inputs in front of a class. Each gets a clear message; nothing else changes.

Every input file is real (made with FFmpeg through ``tests/media.py``), built once per module and small. Each
case goes through the pipeline (``load_video``, ``caption``) and through the panel (path box or
upload), and then the panel must still work: a good video generates, earlier runs are byte-for-byte
as they were. test_video.py checks the same files at the ``probe``/``sample_frames`` level; this file
checks what a person sees. Faults (cancel, out of memory, full disk, kill) are in test_faults.py.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import finish, simulate_upload  # tests/ is on sys.path (pytest's prepend mode)
import media as _media  # tests/media.py
from vid2vid_widgets import video
from vid2vid_widgets.errors import InvalidSettingsError, InvalidVideoError
from vid2vid_widgets.models import REGISTRY
from vid2vid_widgets.panel import Vid2VidPanel
from vid2vid_widgets.pipeline import CAPTION_MAX_SIDE, PREVIEW_SECONDS, Vid2VidPipeline
from vid2vid_widgets.runs import RUN_FILE

SMALL = dict(num_frames=4, num_steps=2, height=32, width=32)
PANEL = {**SMALL, "caption_frames": 2}


# -- the inputs, made once ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-inputs-media")


@pytest.fixture(scope="module")
def good(media) -> Path:
    return _media.make_test_video(media / "good clip.mp4", size=(64, 48), fps=8, seconds=2)


@pytest.fixture(scope="module")
def bad_inputs(media) -> dict:
    """Files that are not usable videos: name -> path."""
    files = {}
    files["zero.mp4"] = media / "zero.mp4"
    files["zero.mp4"].write_bytes(b"")
    files["notes.mp4"] = media / "notes.mp4"
    files["notes.mp4"].write_text("Monday: fractions. Tuesday: volcanoes.\n" * 30)
    # Our own output keeps the index first, so cut in half it still opens: its frames are missing.
    whole = video.encode_mp4(_media.synth_frames(24, (64, 48)), 8, media / "whole.mp4")
    files["cut_in_half.mp4"] = _media.truncate_copy(whole, media / "cut_in_half.mp4")
    # FFmpeg's default muxer writes the index (moov) last: a recording that never finished lacks it.
    moov_last = _media.make_test_video(media / "moov_last.mp4", seconds=2)
    assert [box for box, _, _ in _media.mp4_boxes(moov_last)][-1] == "moov"
    files["no_index.mp4"] = _media.remove_box(moov_last, media / "no_index.mp4", "moov")
    files["song.m4a"] = _media.make_audio_only(media / "song.m4a")
    return files


# name -> what the message must say happened, and the next step it must name.
BAD = {
    "zero.mp4": ("empty (0 bytes)", "again"),
    "notes.mp4": ("not a video", "Export it again"),
    "cut_in_half.mp4": ("cut short", "again"),
    "no_index.mp4": ("without its index", "again"),
    "song.m4a": ("only sound", "Choose a video file"),
}


@pytest.fixture(scope="module")
def odd_inputs(media) -> dict:
    """Unusual but valid videos: name -> (path, displayed width, height, codec)."""
    make = _media.make_test_video
    return {
        "single_frame.mp4": (make(media / "single_frame.mp4", frames=1), 64, 48, "h264"),
        "two_by_two.mp4": (make(media / "two_by_two.mp4", size=(2, 2)), 2, 2, "h264"),
        "uhd.mp4": (make(media / "uhd.mp4", size=(3840, 2160), frames=3, pattern="color"), 3840, 2160, "h264"),
        "hevc.mp4": (make(media / "hevc.mp4", codec="libx265"), 64, 48, "hevc"),
        "vp9.webm": (make(media / "vp9.webm", codec="libvpx-vp9"), 64, 48, "vp9"),
        "animated.gif": (make(media / "animated.gif", codec="gif"), 64, 48, "gif"),
        "ten_bit.mp4": (make(media / "ten_bit.mp4", pix_fmt="yuv420p10le"), 64, 48, "h264"),
        "phone_portrait.mp4": (make(media / "phone_portrait.mp4", size=(64, 48), rotation=90), 48, 64, "h264"),
        "vfr.mp4": (make(media / "vfr.mp4", seconds=3, vfr=True), 64, 48, "h264"),
        # 30 minutes at 8 fps: 14,400 frames, keyframe every 2 s.
        "thirty_minutes.mp4": (_media.make_long_video(media / "thirty_minutes.mp4", seconds=1800, size=(32, 24),
                                                      fps=8), 32, 24, "h264"),
    }


@pytest.fixture
def sampled(monkeypatch) -> list:
    """Every ``SampledFrames`` the pipeline gets from ``video.sample_frames``, to count decoded frames."""
    real_sample_frames, seen = video.sample_frames, []

    def sample_and_keep(*args, **kwargs):
        seen.append(real_sample_frames(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(video, "sample_frames", sample_and_keep)
    return seen


def assert_sampling_seeks(got: "video.SampledFrames") -> None:
    """At most about one GOP (16 frames here) decoded per frame kept, whatever the video's length."""
    assert got.decoded_frames <= len(got) * 17, (got.decoded_frames, got.info.frame_count)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> Vid2VidPipeline:
    return Vid2VidPipeline(models="tiny", output_dir=tmp_path_factory.mktemp("pipe-out"), caption_frames=2, **SMALL)


def panel_in(folder: Path, **kwargs) -> Vid2VidPanel:
    return Vid2VidPanel(models="tiny", output_dir=folder, **{**PANEL, **kwargs})


def preview_facts(panel: Vid2VidPanel, folder: Path) -> dict:
    """What the browser was sent for the left player, decoded (not trusted from its header)."""
    sent = folder / "sent-preview.mp4"
    sent.write_bytes(panel.input_video.value)
    return video.inspect_mp4(sent)


def run_snapshot(run) -> tuple:
    return run.run_dir.name, run.video_path.read_bytes(), (run.run_dir / RUN_FILE).read_text(encoding="utf-8")


def panel_snapshot(panel: Vid2VidPanel) -> tuple:
    """Everything a person sees from earlier work, and the saved runs behind it."""
    return (panel.info.value, panel.input_video.value, panel.caption_text.value, panel.output_video.value,
            panel.loaded, panel.caption_result, len(panel.history.children), panel.seed_used.value,
            [run_snapshot(r) for r in panel.runs])


def generate_works(panel: Vid2VidPanel, earlier: list) -> None:
    """The panel is still usable: Generate makes a new run, and the earlier runs are unchanged."""
    count = len(panel.runs)
    panel.generate_button.click()
    finish(panel)
    assert panel.error.value == "", panel.error.value
    assert len(panel.runs) == count + 1 and panel.output_video.value == panel.runs[-1].video_path.read_bytes()
    assert [run_snapshot(r) for r in panel.runs[:count]] == earlier


@pytest.fixture(scope="module")
def ready_panel(tmp_path_factory, good) -> Vid2VidPanel:
    """A panel mid-lesson: a good video loaded and captioned, one video generated."""
    panel = panel_in(tmp_path_factory.mktemp("ready-panel"))
    panel.load(str(good))
    finish(panel)
    panel.generate()
    finish(panel)
    assert panel.error.value == "" and len(panel.runs) == 1
    return panel


# -- files that are not videos -------------------------------------------------------------------

@pytest.mark.parametrize("name", list(BAD))
def test_bad_file_through_the_pipeline_is_refused_by_name_with_a_next_step(pipe, bad_inputs, good, name):
    what, todo = BAD[name]
    for call in (pipe.load_video, pipe.caption):
        with pytest.raises(InvalidVideoError) as caught:
            call(bad_inputs[name])
        message = str(caught.value)
        assert name in message and what in message and todo in message, message
    # The same bytes as an upload: refused, and not kept in the uploads folder.
    with pytest.raises(InvalidVideoError, match=re.escape(what)):
        pipe.load_video(bad_inputs[name].read_bytes(), name=name)
    assert not (pipe.store.root / "uploads" / name).exists()
    # The pipeline is not left busy or broken.
    assert not pipe.busy and pipe.caption(good).caption.text.strip()


@pytest.mark.parametrize("how", ["path", "upload"])
@pytest.mark.parametrize("name", list(BAD))
def test_bad_file_in_the_panel_shows_why_and_keeps_the_lesson_going(ready_panel, bad_inputs, name, how):
    panel = ready_panel
    before = panel_snapshot(panel)
    if how == "path":
        panel.path_text.value = str(bad_inputs[name])
        panel.load_button.click()
    else:
        simulate_upload(panel.upload, name, bad_inputs[name].read_bytes())
    finish(panel)
    what, todo = BAD[name]
    assert isinstance(panel.last_error, InvalidVideoError)
    assert name in panel.error.value and what in panel.error.value and todo in panel.error.value
    assert "Traceback" not in panel.error.value and "Something went wrong" not in panel.error.value
    assert panel_snapshot(panel) == before  # the video, caption, outputs and runs from before are all still there
    assert not panel.load_button.disabled and not panel.generate_button.disabled
    generate_works(panel, before[-1])


# -- unusual but valid videos ------------------------------------------------------------------

ODD = ["single_frame.mp4", "two_by_two.mp4", "uhd.mp4", "hevc.mp4", "vp9.webm", "animated.gif", "ten_bit.mp4",
       "phone_portrait.mp4", "vfr.mp4", "thirty_minutes.mp4"]


@pytest.mark.parametrize("name", ODD)
def test_unusual_video_through_the_pipeline_is_captioned_upright_and_small(pipe, odd_inputs, sampled, name):
    path, width, height, codec = odd_inputs[name]
    loaded = pipe.load_video(path)
    assert (loaded.info.width, loaded.info.height, loaded.info.codec) == (width, height, codec)
    result = pipe.caption(loaded)
    assert result.caption.text.strip() and len(result.caption.per_frame) == len(result.frames) >= 1
    for frame in result.frames:
        h, w = frame.shape[:2]
        # Upright (portrait stays portrait) and never decoded at 4K size for BLIP.
        assert (w >= h) == (width >= height) and max(w, h) <= CAPTION_MAX_SIDE and frame.dtype == np.uint8
    # Sampling seeks: 30 minutes cost about what 2 seconds do.
    assert_sampling_seeks(sampled[-1])


@pytest.mark.parametrize("name", ODD)
def test_unusual_video_in_the_panel_plays_captions_and_generates(tmp_path, odd_inputs, sampled, name):
    path, width, height, _ = odd_inputs[name]
    panel = panel_in(tmp_path / "out")
    panel.path_text.value = str(path)
    panel.load_button.click()
    finish(panel)
    assert panel.error.value == "", panel.error.value
    assert f"{width}x{height}" in panel.info.value and panel.caption_text.value.strip()
    facts = preview_facts(panel, tmp_path)
    # What the browser gets always plays: H.264 4:2:0, upright, small.
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p" and facts["rotation"] == 0
    assert max(facts["width"], facts["height"]) <= 480
    assert (facts["width"] >= facts["height"]) == (width >= height)
    # A long video loads quickly: the preview is the first minute (and the info line says so).
    assert facts["duration"] <= PREVIEW_SECONDS + 1
    if name == "thirty_minutes.mp4":
        assert "shows the first 1:00" in panel.info.value
        assert_sampling_seeks(sampled[-1])  # and its caption did not decode all 14,400 frames
    generate_works(panel, [])


@pytest.mark.slow
def test_a_file_over_100_mb_in_the_path_box_loads_with_a_small_preview(tmp_path):
    # Noise is the worst case for size: about 160 KB a frame at 640x480, 105+ MB in 27 s.
    big = _media.make_long_video(tmp_path / "big lesson video.mp4", seconds=27, size=(640, 480), fps=25,
                                 unique_seconds=2, pattern="noise")
    try:
        assert big.stat().st_size > 100 * 1024 * 1024
        panel = panel_in(tmp_path / "out")
        panel.path_text.value = str(big)
        panel.load_button.click()
        finish(panel)
        assert panel.error.value == "" and "640x480" in panel.info.value and panel.caption_text.value.strip()
        # The browser gets a few MB (Jupyter drops widget messages over 10 MiB), not the file.
        assert len(panel.input_video.value) < 4 * 1024 * 1024, len(panel.input_video.value)
        assert preview_facts(panel, tmp_path)["codec"] == "h264"
        assert panel.loaded.path == big  # read where it is: not copied into the output folder
    finally:
        big.unlink(missing_ok=True)


# -- file names ----------------------------------------------------------------------------------

NAMES = {
    # uploaded name -> the name it is stored under (always inside <output>/uploads)
    "../../escape.mp4": "escape.mp4",
    "/etc/cron.d/evil.mp4": "evil.mp4",
    "..\\..\\windows.mp4": "windows.mp4",
    "..": "upload",
    "my holiday clip.mp4": "my holiday clip.mp4",
    "Überraschung 日本 видео.mp4": "Überraschung 日本 видео.mp4",
    "<img src=x onerror=alert(1)>.mp4": "_img src_x onerror_alert_1_.mp4",
}


@pytest.mark.parametrize("name", list(NAMES))
def test_upload_names_never_become_paths_outside_the_output_folder(tmp_path, good, name):
    root = tmp_path / "classroom"
    out = root / "a" / "b" / "out"
    panel = panel_in(out, autocaption=False)
    simulate_upload(panel.upload, name, good.read_bytes())
    finish(panel)
    assert panel.error.value == ""
    assert panel.loaded.path == out / "uploads" / NAMES[name]
    assert panel.loaded.path.read_bytes() == good.read_bytes()
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert all(p.startswith("a/b/out/") for p in written), written
    assert "<img" not in panel.info.value  # shown as text, never as HTML


def test_same_upload_name_twice_keeps_both_files_and_shows_the_new_one(tmp_path, good, odd_inputs):
    other = odd_inputs["vp9.webm"][0]
    panel = panel_in(tmp_path / "out", autocaption=False)
    simulate_upload(panel.upload, "clip.mp4", good.read_bytes())
    finish(panel)
    first_path, first_preview = panel.loaded.path, panel.input_video.value
    simulate_upload(panel.upload, "clip.mp4", other.read_bytes())  # a different video, same name
    finish(panel)
    assert panel.error.value == ""
    assert panel.loaded.path != first_path and panel.loaded.path.parent == first_path.parent
    assert first_path.read_bytes() == good.read_bytes()  # the first upload is untouched
    assert panel.loaded.path.read_bytes() == other.read_bytes()
    assert panel.input_video.value != first_preview and "vp9" in panel.info.value


def test_paths_with_spaces_non_ascii_letters_and_dotdot_load(tmp_path, good):
    folder = tmp_path / "Klasse 5b – Füchse"
    folder.mkdir()
    target = folder / "Überraschung 日本 clip.mp4"
    target.write_bytes(good.read_bytes())
    (tmp_path / "elsewhere").mkdir()
    typed = f"{tmp_path}/elsewhere/../Klasse 5b – Füchse/Überraschung 日本 clip.mp4"
    panel = panel_in(tmp_path / "out")
    panel.path_text.value = typed
    panel.load_button.click()
    finish(panel)
    assert panel.error.value == "" and "Überraschung 日本 clip.mp4" in panel.info.value
    generate_works(panel, [])
    record = json.loads((panel.last_result.run_dir / RUN_FILE).read_text(encoding="utf-8"))
    assert record["input"]["name"] == "Überraschung 日本 clip.mp4"
    assert Path(record["input"]["path"]) == target.resolve()  # "../" resolved, the real file named


# -- captions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("words", ["", "   ", "\n\t  \n"])
def test_generate_with_an_empty_caption_is_refused_at_the_click(tmp_path, words):
    panel = panel_in(tmp_path / "out", autocaption=False)
    loads = REGISTRY.total_loads
    panel.caption_text.value = words
    assert panel.generate() is False  # nothing started: no job, no busy buttons
    assert not panel.busy and not panel.generate_button.disabled
    assert isinstance(panel.last_error, InvalidSettingsError)
    assert "caption is empty" in panel.error.value and "type what the new video should show" in panel.error.value
    panel.generate_button.click()
    finish(panel)
    assert "caption is empty" in panel.error.value
    assert not (tmp_path / "out" / "runs").exists() and panel.runs == [] and panel.output_video.value == b""
    assert REGISTRY.total_loads == loads  # no model was loaded for it
    panel.caption_text.value = "a volcano erupting"
    generate_works(panel, [])


def run_folders(pipe: Vid2VidPipeline) -> list:
    return sorted(pipe.store.runs_dir.iterdir()) if pipe.store.runs_dir.exists() else []


def test_pipeline_refuses_an_empty_caption_without_a_run_folder(pipe):
    before = run_folders(pipe)
    with pytest.raises(InvalidSettingsError, match="caption is empty"):
        pipe.generate("   ")
    assert run_folders(pipe) == before and not pipe.busy


def test_a_caption_over_77_tokens_is_cut_and_the_panel_says_so(tmp_path):
    long_words = " ".join(f"then the {i}th red fox jumps over the lazy brown dog" for i in range(12))
    panel = panel_in(tmp_path / "out", autocaption=False)
    panel.caption_text.value = long_words
    generate_works(panel, [])
    assert "longer than the text encoder" in panel.notes.value and "77 tokens" in panel.notes.value
    assert "the end was cut" in panel.notes.value
    record = json.loads((panel.last_result.run_dir / RUN_FILE).read_text(encoding="utf-8"))
    assert record["settings"]["prompt"] == long_words  # what the person wrote is kept whole
    assert any("77 tokens" in note for note in record["notes"])
    # A short caption in the next run: no stale note.
    panel.caption_text.value = "a fox"
    generate_works(panel, [run_snapshot(panel.runs[0])])
    assert "77 tokens" not in panel.notes.value


@pytest.mark.parametrize("words", [
    "一只红狐狸在雪中奔跑",
    "Ein Fuchs läuft über den Schnee – ça va, señor?",
    "Лиса бежит по снегу",
    "ثعلب أحمر يركض في الثلج",
    "🦊 in the snow ❄️",
])
def test_non_english_captions_work_end_to_end(tmp_path, words):
    panel = panel_in(tmp_path / "out", autocaption=False)
    panel.caption_text.value = words
    generate_works(panel, [])
    run_dir = panel.last_result.run_dir
    record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    assert record["settings"]["prompt"] == words  # kept exactly, not escaped or transliterated away
    assert run_dir.parent == tmp_path / "out" / "runs"
    assert re.fullmatch(r"\d{8}-\d{6}-[a-z0-9-]+", run_dir.name), run_dir.name  # a folder name any disk takes
    assert video.inspect_mp4(panel.last_result.video_path)["frames"] == SMALL["num_frames"]
    assert html.escape(words) in panel.history.children[0].children[-1].value


def test_a_caption_with_html_is_shown_as_text_in_the_history(tmp_path):
    words = 'a <b>bold</b> fox <img src=x onerror="alert(1)">'
    panel = panel_in(tmp_path / "out", autocaption=False)
    panel.caption_text.value = words
    generate_works(panel, [])
    row = panel.history.children[0].children[-1].value
    assert "<img" not in row and "<b>" not in row and "&lt;img src=x" in row


# -- settings out of range -----------------------------------------------------------------------

@pytest.mark.parametrize("setting, value, words", [
    ("num_frames", 0, "frames must be a whole number of at least 1"),
    ("num_steps", 0, "steps must be a whole number of at least 1"),
    ("seed", -1, "seed must be a whole number from 0"),
])
def test_pipeline_refuses_settings_that_cannot_run(pipe, setting, value, words):
    before = run_folders(pipe)
    with pytest.raises(InvalidSettingsError, match=words):
        pipe.generate("a red fox", **{setting: value})
    assert run_folders(pipe) == before
    assert not pipe.busy


def test_pipeline_corrects_a_size_that_is_not_a_multiple_of_8_and_says_so(pipe):
    result = pipe.generate("a red fox", height=36, width=30, seed=1)
    assert result.frames.shape[1:3] == (40, 32)
    assert "height 36 is not a multiple of 8; using 40." in result.notes
    assert "width 30 is not a multiple of 8; using 32." in result.notes


def test_panel_settings_out_of_range_are_corrected_or_refused_with_a_message(tmp_path):
    panel = panel_in(tmp_path / "out", autocaption=False)
    panel.caption_text.value = "a red fox"
    # Frames and steps boxes cannot hold 0: the box itself shows the nearest allowed value.
    panel.frames.value, panel.steps.value = 0, 0
    assert (panel.frames.value, panel.steps.value) == (1, 1)
    panel.frames.value, panel.steps.value = 4, 2
    # A negative seed: refused at the click, with what to type instead.
    panel.random_seed.value = False
    panel.seed.value = -5
    assert panel.generate() is False
    assert "seed must be a whole number from 0" in panel.error.value and "leave it empty" in panel.error.value
    assert panel.runs == [] and not (tmp_path / "out" / "runs").exists()
    # A width that is not a multiple of 8: corrected, and the notes say so.
    panel.seed.value = 5
    panel.width.value = 30
    generate_works(panel, [])
    assert panel.last_result.frames.shape[2] == 32 and "width 30 is not a multiple of 8" in panel.notes.value
