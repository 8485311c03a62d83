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
    from diffusers import VideoToVideoSDPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = VideoToVideoSDPipeline.from_pretrained(tiny_path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


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


def test_low_strength_anchors_to_the_input_and_the_difference_grows_with_strength(generator):
    """Holds for any weights: less strength, fewer denoising steps, more of the input kept."""
    frames = moving_frames()
    settings = SETTINGS.replace(num_steps=10)
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
