"""Video-to-video (SDEdit with a strength) on the generator skeleton, both backends, tiny models.

Parity with diffusers' own (deprecated) ``VideoToVideoSDPipeline``; the properties that hold for any
weights (low strength anchors the video to its input, the difference grows with strength); and the
input prepared by time and aspect ratio.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vid2vid_widgets.errors import InvalidSettingsError
from vid2vid_widgets.generation.base import GenerationSettings
from vid2vid_widgets.generation.diffusers_t2v import DiffusersTextToVideo
from vid2vid_widgets.tiny import tiny_model_path
from vid2vid_widgets.video.fit import crop_box, fit_frames

from conftest import reference_pipeline  # tests/ is on sys.path (pytest's prepend mode)

SETTINGS = GenerationSettings(prompt="a red car on the street at night", negative_prompt="blurry", seed=99,
                              num_frames=8, num_steps=4, guidance_scale=9.0, height=32, width=32)


def moving_frames(count: int = 8, height: int = 32, width: int = 32) -> np.ndarray:
    """A bright square moving left to right over a gradient: content a VAE can tell apart."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        frames[i, ..., 0] = (x * 255 // max(1, width - 1)).astype(np.uint8)
        frames[i, ..., 1] = (y * 255 // max(1, height - 1)).astype(np.uint8)
        frames[i, ..., 2] = 40
        left = i * (width - 8) // max(1, count - 1)
        frames[i, 8:16, left : left + 8] = 255
    return frames


@pytest.fixture(scope="module")
def tiny_path() -> str:
    return tiny_model_path("text-to-video")


@pytest.fixture(scope="module")
def generator(tiny_path) -> DiffusersTextToVideo:
    gen = DiffusersTextToVideo(tiny_path, device="cpu", vae_slice_frames=3)  # slices must not change numbers
    gen.load()
    return gen


@pytest.fixture(scope="module")
def reference(tiny_path):
    """diffusers' own video-to-video pipeline, loaded from the same folder by diffusers' loader."""
    return reference_pipeline("VideoToVideoSDPipeline", tiny_path)


def reference_frames(pipe, settings: GenerationSettings, frames: np.ndarray) -> np.ndarray:
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    scheduler_class = DPMSolverMultistepScheduler if settings.scheduler == "dpm++" else DDIMScheduler
    options = {"algorithm_type": "dpmsolver++"} if settings.scheduler == "dpm++" else {}
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config, **options)
    video = [frame.astype(np.float32) / 255 for frame in frames]  # [0, 1] floats, the pipeline's input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pipe(settings.prompt, video=video, strength=settings.strength, negative_prompt=settings.negative_prompt,
                   num_inference_steps=settings.num_steps, guidance_scale=settings.guidance_scale,
                   generator=torch.Generator().manual_seed(settings.seed))
    return out.frames[0]


@pytest.mark.parametrize("scheduler,strength", [("ddim", 0.5), ("dpm++", 0.6), ("dpm++", 0.75)])
def test_same_frames_as_diffusers_video_to_video_pipeline(generator, reference, scheduler, strength):
    settings = SETTINGS.replace(scheduler=scheduler, strength=strength)
    frames = moving_frames()
    ours = generator._generate_float(settings, init_frames=frames).frames
    theirs = reference_frames(reference, settings, frames)
    assert ours.shape == theirs.shape == (8, 32, 32, 3)
    assert float(np.abs(ours - theirs).max()) <= 1e-4
    # and the reference really depends on what we compare: another input gives other frames
    other = reference_frames(reference, settings, moving_frames()[::-1].copy())
    assert float(np.abs(ours - other).max()) > 1e-2


def test_same_seed_settings_and_input_give_identical_frames(generator):
    settings = SETTINGS.replace(strength=0.6)
    first = generator.generate(settings, init_frames=moving_frames()).frames
    again = generator.generate(settings, init_frames=moving_frames()).frames
    np.testing.assert_array_equal(first, again)


def _mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


@pytest.mark.parametrize("scheduler", ["dpm++", "ddim"])
def test_low_strength_anchors_to_the_input_and_the_difference_grows_with_strength(generator, scheduler):
    """Holds for any UNet weights (with a VAE whose latents have unit spread, as every trained one has,
    and as the tiny one is built): less strength, fewer steps, less noise, more of the input kept."""
    frames = moving_frames()
    settings = SETTINGS.replace(num_steps=10, scheduler=scheduler)
    gaps = []
    for strength in (0.1, 0.5, 1.0):
        a = generator.generate(settings.replace(strength=strength, seed=1), init_frames=frames).frames
        b = generator.generate(settings.replace(strength=strength, seed=2), init_frames=frames).frames
        gaps.append(_mean_difference(a, b))
    low, middle, full = gaps
    assert low < middle < full, gaps
    assert low < 0.5 * full, gaps  # two seeds at 0.1 are nearly the same video; at 1.0 they are not


def test_strength_one_ignores_the_input_and_matches_text_to_video(generator):
    text_only = generator.generate(SETTINGS).frames
    given = generator.generate(SETTINGS, init_frames=moving_frames()).frames
    np.testing.assert_array_equal(text_only, given)


def test_no_step_left_returns_the_input_through_the_vae_with_a_note(generator):
    result = generator.generate(SETTINGS.replace(strength=0.1, num_steps=4), init_frames=moving_frames())
    assert any("no denoising step" in note for note in result.notes), result.notes
    assert result.frames.shape == (8, 32, 32, 3)


def test_progress_counts_only_the_steps_that_run(generator):
    reports = []
    generator.generate(SETTINGS.replace(strength=0.5, num_steps=10), init_frames=moving_frames(),
                       on_progress=reports.append)
    denoise = [r for r in reports if r.stage == "denoise"]
    assert [r.step for r in denoise] == [1, 2, 3, 4, 5] and {r.total for r in denoise} == {5}
    assert [r.step for r in reports if r.stage == "encode_input"] == [1, 2, 3]  # 8 frames, 3 per slice


def test_strength_below_one_without_an_input_says_to_give_a_video(generator):
    with pytest.raises(InvalidSettingsError, match="input video"):
        generator.generate(SETTINGS.replace(strength=0.6))


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_strength_out_of_range_is_refused(bad):
    with pytest.raises(InvalidSettingsError, match="strength must be from 0 to 1"):
        SETTINGS.replace(strength=bad).checked()


def test_input_frames_of_another_size_are_cropped_to_the_output_aspect(generator):
    wide = moving_frames(8, 32, 64)  # 2:1 input for a square output: the centre half is kept
    result = generator.generate(SETTINGS.replace(strength=0.6), init_frames=wide)
    assert result.frames.shape == (8, 32, 32, 3)
    with pytest.raises(InvalidSettingsError, match="one input frame per output frame"):
        generator.generate(SETTINGS.replace(strength=0.6), init_frames=moving_frames(5))


def test_fit_frames_crops_the_centre_and_keeps_proportions():
    assert crop_box(1920, 1080, 256, 256) == (420, 0, 1500, 1080)
    assert crop_box(1080, 1920, 448, 256) == (0, 651, 1080, 1268)
    frames = np.zeros((2, 40, 80, 3), dtype=np.uint8)
    frames[:, :, 20:60] = 200  # the centre square is bright, the sides dark
    fitted = fit_frames(frames, 16, 16)
    assert fitted.shape == (2, 16, 16, 3) and fitted.min() >= 190  # only the centre is left
    assert fit_frames(fitted, 16, 16) is fitted  # already the size: unchanged


# -- the input window: frames chosen by time, read by seeking -------------------------------------

import json  # noqa: E402  (the sections below are about files and runs)

import av  # noqa: E402

import media  # noqa: E402  tests/media.py
from conftest import finish  # noqa: E402
from vid2vid_widgets import video  # noqa: E402
from vid2vid_widgets.errors import Vid2VidError  # noqa: E402
from vid2vid_widgets.panel import Vid2VidPanel  # noqa: E402
from vid2vid_widgets.pipeline import Vid2VidPipeline  # noqa: E402
from vid2vid_widgets.runs import RUN_FILE  # noqa: E402

SMALL = dict(num_frames=4, num_steps=2, height=32, width=32)


def _numbered_frames(count: int, size=(48, 32)) -> list:
    """Frame i is a flat grey of level 10 * i + 5: which frame was read is visible in any pixel."""
    return [np.full((size[1], size[0], 3), 10 * i + 5, dtype=np.uint8) for i in range(count)]


def _on_screen(path, times) -> list:
    """Ground truth from a plain decode: the level of the last frame whose timestamp is <= t."""
    shown = []
    with av.open(str(path)) as container:
        decoded = [(float(f.pts * f.time_base), int(f.to_ndarray(format="rgb24")[0, 0, 0]))
                   for f in container.decode(video=0)]
    for t in times:
        before = [level for when, level in decoded if when <= t + 1e-6]
        shown.append(before[-1] if before else decoded[0][1])
    return shown


def test_frames_are_chosen_by_time_on_a_variable_frame_rate_input(tmp_path):
    path = media.write_video(tmp_path / "vfr.mkv", _numbered_frames(24), fps=8, vfr=True, pix_fmt="yuv444p")
    times, notes = video.window_times(video.probe(path).duration, 8, 0.5, 2.0)  # a frame every 0.25 s
    sampled = video.frames_at(path, times)
    levels = [int(frame[0, 0, 0]) for frame in sampled.frames]
    assert len(levels) == 8 and notes == []
    assert np.allclose(levels, _on_screen(path, times), atol=2), (levels, _on_screen(path, times))
    # by time, not by index: the next 8 frames in the file would be another answer
    assert levels != [int(f[0, 0, 0]) for f in _numbered_frames(24)[4:12]]
    assert len(set(levels)) == 8  # and no frame twice: the input has more frames than the window needs


def test_a_rotated_phone_video_is_followed_upright(tmp_path):
    stored = np.zeros((32, 48, 3), dtype=np.uint8)
    stored[:8, :8] = 255  # a white corner, top-left as stored
    path = media.write_video(tmp_path / "phone.mp4", [stored] * 16, fps=8, rotation=90, pix_fmt="yuv444p")
    sampled = video.frames_at(path, [0.0, 0.5, 1.0])
    frame = sampled.frames[0]
    assert frame.shape == (48, 32, 3)  # upright: taller than wide
    assert frame[:8, -8:].mean() > 200 and frame[:8, :8].mean() < 50  # turned 90 degrees clockwise


def test_a_ten_minute_input_is_read_like_a_ten_second_one(tmp_path):
    short = media.make_long_video(tmp_path / "short.mp4", seconds=10, size=(64, 48), fps=25)
    long = media.make_long_video(tmp_path / "long.mp4", seconds=600, size=(64, 48), fps=25)
    decoded = {}
    for name, path, start in (("short", short, 4.0), ("long", long, 304.0)):
        times, _ = video.window_times(video.probe(path).duration, 16, start, 2.0)
        decoded[name] = video.frames_at(path, times).decoded_frames
    # One keyframe interval (2 s = 50 frames) at most before the window, plus the window's 50 frames.
    assert decoded["long"] <= decoded["short"] + 50 and decoded["long"] <= 110, decoded


def test_window_past_the_end_says_how_long_the_video_is():
    with pytest.raises(InvalidSettingsError, match=r"runs past the end of the video \(5.00 s long\).*4.00 s or earlier"):
        video.window_times(5.0, 8, 4.5, 1.0)
    with pytest.raises(InvalidSettingsError, match="past the end"):
        video.window_times(5.0, 8, 5.0, 0.5)
    times, notes = video.window_times(1.5, 4, 0.0, 2.0)  # shorter than the window: all of it, with a note
    assert times == [0.0, 0.375, 0.75, 1.125] and "shorter than" in notes[0]


# -- the pipeline, the panel and the command line -------------------------------------------------

@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return media.make_test_video(tmp_path_factory.mktemp("v2v") / "street.mp4", size=(64, 48), fps=8, seconds=3)


def test_pipeline_follows_a_source_records_it_and_regenerates_it_exactly(tmp_path, clip):
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path / "out", **SMALL)
    result = pipe.generate("a red car in the snow", source=clip, strength=0.6, start=0.5, seed=4)
    record = json.loads((result.run_dir / RUN_FILE).read_text())
    assert record["settings"]["strength"] == 0.6 and record["settings"]["start"] == 0.5
    assert record["follow"]["start"] == 0.5 and record["follow"]["window"] == 0.5  # 4 frames at 8 fps
    assert len(record["follow"]["frame_times"]) == 4
    assert record["input"]["sha256_head"] and record["input"]["path"] == str(clip.resolve())
    text_only = pipe.generate("a red car in the snow", seed=4)
    assert not np.array_equal(result.frames, text_only.frames)  # the input really was followed
    again = pipe.regenerate(result.run_dir)
    np.testing.assert_array_equal(again.frames, result.frames)


def test_regenerate_refuses_when_the_followed_input_is_gone_or_changed(tmp_path, clip):
    copy = tmp_path / "mine.mp4"
    copy.write_bytes(clip.read_bytes())
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path / "out", **SMALL)
    result = pipe.generate("a street", source=copy, strength=0.5, seed=1)
    media.make_test_video(copy, size=(64, 48), fps=8, seconds=3, pattern="mandelbrot")  # another video, same name
    with pytest.raises(Vid2VidError, match="has changed"):
        pipe.regenerate(result.run_dir)
    copy.unlink()
    with pytest.raises(Vid2VidError, match="no longer there"):
        pipe.regenerate(result.run_dir)


def test_strength_below_one_without_a_source_and_a_window_past_the_end_run_nothing(tmp_path, clip):
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path / "out", **SMALL)
    with pytest.raises(InvalidSettingsError, match="give|pass one"):
        pipe.generate("a street", strength=0.6)
    with pytest.raises(InvalidSettingsError, match="past the end"):
        pipe.generate("a street", source=clip, strength=0.6, start=2.9)
    assert pipe.history() == []


def test_output_size_follows_the_input_aspect_unless_chosen(tmp_path, clip):
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path / "out", num_frames=2, num_steps=1)
    assert pipe.size_for_input(clip) == {"width": 296, "height": 224}  # 4:3 at about 256x256's pixels
    followed = pipe.generate("a street", source=clip, strength=0.5, seed=2)
    assert followed.frames.shape == (2, 224, 296, 3)
    assert any("follows the input's aspect ratio" in note for note in followed.notes)
    chosen = pipe.generate("a street", source=clip, strength=0.5, seed=2, height=64, width=64)
    assert chosen.frames.shape == (2, 64, 64, 3)


def test_the_panel_slider_and_start_reach_the_run(tmp_path, clip):
    panel = Vid2VidPanel(models="tiny", output_dir=tmp_path / "out", autocaption=False, caption_frames=2, **SMALL)
    assert panel.strength.value == 1.0  # today's behaviour by default: from the words alone
    panel.strength.value = 0.4
    panel.caption_text.value = "a street in watercolour"
    assert panel.generate() is False and "no video is loaded" in panel.error.value  # refused at the click
    panel.load(str(clip))
    finish(panel)
    panel.start.value = 1.0
    panel.generate_button.click()
    finish(panel)
    assert panel.error.value == "", panel.error.value
    record = json.loads((panel.last_result.run_dir / RUN_FILE).read_text())
    assert (record["settings"]["strength"], record["settings"]["start"]) == (0.4, 1.0)
    assert record["follow"]["frame_times"][0] == 1.0
    assert "follows the input at 0.4" in panel.history.children[0].children[-1].value


@pytest.mark.slow
def test_cli_run_follows_a_real_video(tmp_path, bikes):
    from test_cli import SMALL as CLI_SMALL, vid2vid

    done = vid2vid("run", bikes, "--strength", "0.6", "--start", "2.5", "--seed", "5", "-o", "new.mp4",
                   "--output-dir", "runs", *CLI_SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert video.inspect_mp4(tmp_path / "new.mp4")["frames"] == 4
    run_dir = next((tmp_path / "runs" / "runs").iterdir())
    record = json.loads((run_dir / RUN_FILE).read_text())
    assert record["settings"]["strength"] == 0.6 and record["follow"]["start"] == 2.5
    late = vid2vid("run", bikes, "--strength", "0.6", "--start", "9.9", *CLI_SMALL, cwd=tmp_path)
    assert late.returncode == 1 and "past the end" in late.stderr and "Traceback" not in late.stderr


# -- the original ModelScope backend, through its own autoencoder ---------------------------------

def test_modelscope_backend_follows_the_input_through_its_own_autoencoder():
    pytest.importorskip("modelscope", reason='needs the [modelscope] extra: pip install "vid2vid-widgets[modelscope]"')
    pytest.importorskip("open_clip", reason='needs the [modelscope] extra: pip install "vid2vid-widgets[modelscope]"')
    from vid2vid_widgets.generation.modelscope_t2v import ModelScopeTextToVideo

    generator = ModelScopeTextToVideo(tiny_model_path("modelscope"), device="cpu", dtype="float32")
    settings = GenerationSettings(prompt="a red fox running in the snow", seed=7, num_frames=2, height=16, width=16,
                                  num_steps=4, scheduler="ddim", strength=0.5)
    frames = moving_frames(2, 16, 16)
    reports = []
    first = generator.generate(settings, init_frames=frames, on_progress=reports.append)
    again = generator.generate(settings, init_frames=frames)
    np.testing.assert_array_equal(first.frames, again.frames)  # same seed, settings and input
    assert [r.step for r in reports if r.stage == "denoise"] == [1, 2]  # 4 steps at strength 0.5: 2 run
    other_input = generator.generate(settings, init_frames=frames[::-1].copy())
    words_only = generator.generate(settings.replace(strength=1.0))
    assert not np.array_equal(first.frames, other_input.frames)
    assert not np.array_equal(first.frames, words_only.frames)
