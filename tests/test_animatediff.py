"""The AnimateDiff backend on tiny random components: parity with diffusers' AnimateDiffPipeline, and
the skeleton's promises (seed, progress, cancel, video-to-video) for both AnimateDiff presets."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from vid2vid_widgets import catalogue, models
from vid2vid_widgets.errors import GenerationCancelled, ModelLoadError
from vid2vid_widgets.generation.animatediff import AnimateDiffGenerator
from vid2vid_widgets.generation.base import GenerationSettings
from vid2vid_widgets.progress import CancelToken
from vid2vid_widgets.tiny import tiny_model_path
from vid2vid_widgets.tiny.animatediff import LIGHTNING_FILE

SETTINGS = GenerationSettings(prompt="a dog runs in the park", negative_prompt="blurry low quality", seed=77,
                              num_frames=4, num_steps=3, guidance_scale=7.5, height=32, width=32, scheduler="ddim")


@pytest.fixture(scope="module")
def tiny_path() -> str:
    return tiny_model_path("animatediff")


def preset_generator(name: str) -> AnimateDiffGenerator:
    generator, preset = catalogue.make_generator(name, models="tiny", device="cpu", dtype="float32")
    assert preset is not None and preset.name == name
    return generator


@pytest.fixture(scope="module")
def animatediff() -> AnimateDiffGenerator:
    return preset_generator("animatediff")


@pytest.fixture(scope="module")
def lightning() -> AnimateDiffGenerator:
    return preset_generator("animatediff-lightning")


def reference_pipeline(folder: str, adapter, scheduler_name: str, overrides):
    """diffusers' AnimateDiffPipeline from the same folder, loaded by diffusers' own loaders."""
    from diffusers import AnimateDiffPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from vid2vid_widgets.generation.diffusers_t2v import build_scheduler

    config = {**dict(DDIMScheduler.load_config(folder, subfolder="scheduler")), **overrides}
    pipe = AnimateDiffPipeline(
        vae=AutoencoderKL.from_pretrained(folder, subfolder="vae"),
        text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet"),
        motion_adapter=adapter,
        scheduler=build_scheduler(scheduler_name, config),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def reference_frames(pipe, settings: GenerationSettings) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pipe(settings.prompt, negative_prompt=settings.negative_prompt, num_frames=settings.num_frames,
                   height=settings.height, width=settings.width, num_inference_steps=settings.num_steps,
                   guidance_scale=settings.guidance_scale, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(settings.seed))
    return out.frames[0]


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++"])
def test_same_frames_as_animatediff_pipeline(animatediff, tiny_path, scheduler):
    from diffusers import MotionAdapter

    settings = SETTINGS.replace(scheduler=scheduler)
    pipe = reference_pipeline(tiny_path, MotionAdapter.from_pretrained(os.path.join(tiny_path, "motion_adapter")),
                              scheduler, catalogue.ANIMATEDIFF_SCHEDULER)
    ours = animatediff._generate_float(settings).frames
    theirs = reference_frames(pipe, settings)
    assert ours.shape == theirs.shape == (4, 32, 32, 3)
    assert float(np.abs(ours - theirs).max()) <= 1e-4


def test_lightning_recipe_matches_the_pipeline_with_its_single_file_adapter(lightning, tiny_path):
    from diffusers import MotionAdapter
    from safetensors.torch import load_file

    preset = catalogue.generator_preset("animatediff-lightning")
    # The card's recipe reaches the settings: 4 Euler steps with trailing timesteps, guidance 1.
    settings = preset.settings(prompt="a red car on the street", seed=5, num_frames=4, height=32, width=32)
    assert (settings.num_steps, settings.guidance_scale, settings.scheduler) == (4, 1.0, "euler")
    folder = os.path.join(tiny_path, "lightning")
    adapter = MotionAdapter.from_config(MotionAdapter.load_config(folder))
    adapter.load_state_dict(load_file(os.path.join(folder, LIGHTNING_FILE)))
    pipe = reference_pipeline(tiny_path, adapter.float(), "euler", catalogue.LIGHTNING_SCHEDULER)
    ours = lightning._generate_float(settings).frames
    assert float(np.abs(ours - reference_frames(pipe, settings)).max()) <= 1e-4
    # A different adapter really is used: the base preset gives other frames for the same settings.
    base = preset_generator("animatediff")._generate_float(settings).frames
    assert float(np.abs(ours - base).max()) > 1e-3


def test_motion_unet_holds_the_loaded_tensors_once(animatediff):
    unet = animatediff.components.unet
    assert type(unet).__name__ == "UNetMotionModel"
    assert not any(p.is_meta for p in unet.parameters())
    assert all(p.dtype == torch.float32 for p in unet.parameters())


def test_seed_reproducible_and_different_seeds_differ(lightning):
    settings = SETTINGS.replace(scheduler="euler", num_steps=2)
    first = lightning.generate(settings).frames
    assert np.array_equal(first, lightning.generate(settings).frames)
    assert not np.array_equal(first, lightning.generate(settings.replace(seed=78)).frames)


def test_progress_every_step_and_cancel_stops_at_the_first(animatediff):
    reports = []
    animatediff.generate(SETTINGS, on_progress=reports.append)
    assert [p.step for p in reports if p.stage == "denoise"] == [1, 2, 3]
    cancel = CancelToken()
    calls = []
    handle = animatediff.components.unet.register_forward_pre_hook(lambda module, args: calls.append(1))

    def stop_after_first(progress):
        if progress.stage == "denoise" and progress.step == 1:
            cancel.cancel()

    try:
        with pytest.raises(GenerationCancelled):
            animatediff.generate(SETTINGS.replace(num_steps=5), on_progress=stop_after_first, cancel=cancel)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_video_to_video_follows_the_input(animatediff):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(4, 40, 48, 3), dtype=np.uint8)
    settings = SETTINGS.replace(num_steps=4, strength=0.5)
    followed = animatediff.generate(settings, init_frames=frames)
    assert followed.frames.shape == (4, 32, 32, 3)
    other = animatediff.generate(settings, init_frames=255 - frames)
    assert not np.array_equal(followed.frames, other.frames)  # the input decides the result


def test_switching_presets_keeps_both_resident_and_unload_frees(animatediff, lightning):
    animatediff.load()
    lightning.load()
    assert animatediff.key != lightning.key
    assert models.REGISTRY.is_loaded(animatediff.key) and models.REGISTRY.is_loaded(lightning.key)
    before = models.REGISTRY.load_counts[animatediff.key]
    animatediff.load()
    assert models.REGISTRY.load_counts[animatediff.key] == before  # resident: not loaded again
    assert models.unload("animatediff") >= 2
    assert not models.REGISTRY.is_loaded(lightning.key)


def test_an_adapter_that_does_not_fit_is_a_clear_error(tiny_path, tmp_path):
    generator = AnimateDiffGenerator(tiny_path, motion_adapter=str(tmp_path / "missing-adapter"), device="cpu")
    with pytest.raises(ModelLoadError, match="missing-adapter"):
        generator.load()
