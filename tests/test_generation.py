"""The diffusers text-to-video backend, on tiny random components loaded through the real loading path."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from vid2vid_widgets import models, oom
from vid2vid_widgets.errors import GenerationCancelled, GPUOutOfMemoryError, ModelLoadError
from vid2vid_widgets.generation.base import GeneratedFrames, GenerationSettings, Generator
from vid2vid_widgets.generation.diffusers_t2v import DEFAULT_T2V_MODEL, DiffusersTextToVideo
from vid2vid_widgets.progress import CancelToken
from vid2vid_widgets.tiny import tiny_model_path

from conftest import reference_pipeline  # tests/ is on sys.path (pytest's prepend mode)

SETTINGS = GenerationSettings(
    prompt="a cat runs on the beach at sunset",
    negative_prompt="blurry low quality",
    seed=1234,
    num_frames=8,
    num_steps=2,
    guidance_scale=9.0,
    height=32,
    width=32,
)


@pytest.fixture(scope="module")
def tiny_path() -> str:
    return tiny_model_path("text-to-video")


@pytest.fixture(scope="module")
def generator(tiny_path) -> DiffusersTextToVideo:
    gen = DiffusersTextToVideo(tiny_path, device="cpu")
    gen.load()
    return gen


@pytest.fixture(scope="module")
def reference(tiny_path):
    """diffusers' own (deprecated) pipeline, loaded from the same folder by diffusers' own loader."""
    return reference_pipeline("TextToVideoSDPipeline", tiny_path)


def reference_frames(pipe, settings: GenerationSettings) -> np.ndarray:
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    # The published recipe for this model: DPM-Solver++ from the pipeline's own scheduler config.
    scheduler_class = DPMSolverMultistepScheduler if settings.scheduler == "dpm++" else DDIMScheduler
    pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "TextToVideoSDPipeline has been deprecated ..."
        out = pipe(
            settings.prompt,
            negative_prompt=settings.negative_prompt,
            num_frames=settings.num_frames,
            height=settings.height,
            width=settings.width,
            num_inference_steps=settings.num_steps,
            guidance_scale=settings.guidance_scale,
            generator=torch.Generator().manual_seed(settings.seed),
        )
    return out.frames[0]


@pytest.mark.parametrize("scheduler", ["ddim", "dpm++"])
def test_same_frames_as_the_reference_pipeline(generator, reference, scheduler):
    settings = SETTINGS.replace(scheduler=scheduler, num_steps=3)
    ours = generator._generate_float(settings).frames
    theirs = reference_frames(reference, settings)
    assert ours.shape == theirs.shape == (8, 32, 32, 3)
    assert ours.dtype == np.float32
    assert float(np.abs(ours - theirs).max()) <= 1e-4
    # The public result is those frames rounded like diffusers rounds them for PIL (a float difference
    # within the tolerance may flip a value sitting on a .5 boundary, hence 1 level of slack).
    rounded = (theirs * 255).round().astype(np.int16)
    assert np.abs(generator.generate(settings).frames.astype(np.int16) - rounded).max() <= 1


def test_result_is_uint8_frames_with_timings_and_model(generator):
    result = generator.generate(SETTINGS)
    assert isinstance(result, GeneratedFrames)
    assert result.frames.dtype == np.uint8 and result.frames.shape == (8, 32, 32, 3)
    assert result.frames.std() > 0  # not a constant image
    assert {"encode_prompt", "denoise", "decode"} <= set(result.timings)
    assert result.model["backend"] == "diffusers" and result.model["device"] == "cpu"
    assert result.settings == SETTINGS


def test_same_seed_same_frames_other_seed_other_frames(generator):
    first = generator.generate(SETTINGS).frames
    again = generator.generate(SETTINGS).frames
    other = generator.generate(SETTINGS.replace(seed=SETTINGS.seed + 1)).frames
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_missing_seed_is_picked_recorded_and_reproducible(generator):
    # Unchecked settings: the generator checks them itself (seed drawn, size rounded, notices kept).
    result = generator.generate(SETTINGS.replace(seed=None, height=30))
    assert isinstance(result.settings.seed, int)
    assert result.settings.height == 32 and result.frames.shape == (8, 32, 32, 3)
    assert any("height 30" in note for note in result.notes)
    again = generator.generate(SETTINGS.replace(seed=result.settings.seed))
    assert np.array_equal(result.frames, again.frames)


def test_progress_once_per_step_with_growing_elapsed(generator):
    reports = []
    generator.generate(SETTINGS.replace(num_steps=3, scheduler="ddim"), on_progress=reports.append)
    denoise = [p for p in reports if p.stage == "denoise"]
    assert [p.step for p in denoise] == [1, 2, 3]
    assert all(p.total == 3 for p in denoise)
    elapsed = [p.elapsed for p in denoise]
    assert all(b > a for a, b in zip(elapsed, elapsed[1:])) and elapsed[0] > 0
    decode = [p for p in reports if p.stage == "decode"]
    assert decode and decode[-1].step == decode[-1].total


def test_cancel_after_the_first_step_stops_with_no_result(generator):
    cancel = CancelToken()
    unet_calls = []
    decoded = []
    handle = generator.components.unet.register_forward_pre_hook(lambda module, args: unet_calls.append(1))

    def on_progress(progress):
        decoded.append(progress.stage == "decode")
        if progress.stage == "denoise" and progress.step == 1:
            cancel.cancel()

    try:
        with pytest.raises(GenerationCancelled):
            generator.generate(SETTINGS.replace(num_steps=4), on_progress=on_progress, cancel=cancel)
    finally:
        handle.remove()
    assert len(unet_calls) == 1  # stopped at the first step boundary, not at the end
    assert not any(decoded)


def test_vae_slices_decode_the_same_frames(generator, tiny_path, monkeypatch):
    whole = DiffusersTextToVideo(tiny_path, device="cpu", vae_slice_frames=0)
    sliced = DiffusersTextToVideo(tiny_path, device="cpu", vae_slice_frames=3)
    vae = generator.components.vae
    batches = []
    real_decode = vae.decode

    def spy(latents, *args, **kwargs):
        batches.append(latents.shape[0])
        return real_decode(latents, *args, **kwargs)

    monkeypatch.setattr(vae, "decode", spy)
    expected = whole._generate_float(SETTINGS).frames
    assert batches == [8]
    batches.clear()
    frames = sliced._generate_float(SETTINGS).frames
    assert batches == [3, 3, 2] and len(batches) == math.ceil(8 / 3)
    assert float(np.abs(frames - expected).max()) <= 1e-5


def test_components_are_loaded_once_and_shared(tiny_path, monkeypatch):
    registry = models.ModelRegistry()
    monkeypatch.setattr(models, "REGISTRY", registry)
    first = DiffusersTextToVideo(tiny_path, device="cpu")
    second = DiffusersTextToVideo(tiny_path, device="cpu", vae_slice_frames=2)
    assert isinstance(first, Generator)
    first.load()
    second.load()
    assert registry.total_loads == 1 and registry.load_counts[first.key] == 1
    assert first.key.role == "text-to-video"
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        assert getattr(first.components, name) is getattr(second.components, name)
    # Unloading really lets go: the generator holds no reference of its own and loads again on demand.
    unet = first.components.unet
    registry.unload("text-to-video")
    assert first.components.unet is not unet and registry.total_loads == 2


def test_long_caption_is_cut_at_77_tokens_with_a_note(generator):
    # Every "cat" is one token; with the start and end tokens, 75 words fill the 77 exactly.
    fits = generator.generate(SETTINGS.replace(prompt="cat " * 75, num_steps=1))
    longer = generator.generate(SETTINGS.replace(prompt="cat " * 75 + "dog on the beach", num_steps=1))
    assert not any("77 tokens" in note for note in fits.notes)
    notes = [note for note in longer.notes if "77 tokens" in note]
    assert len(notes) == 1 and "dog on the beach" in notes[0]
    assert np.array_equal(fits.frames, longer.frames)  # what was cut had no effect


def test_negative_prompt_changes_the_frames_only_with_guidance(generator):
    plain = generator.generate(SETTINGS.replace(negative_prompt=""))
    negative = generator.generate(SETTINGS.replace(negative_prompt="blurry low quality"))
    assert not np.array_equal(plain.frames, negative.frames)
    # Guidance 1 means no unconditional pass at all: one UNet batch of one, negative prompt unused.
    batch_sizes = []
    handle = generator.components.unet.register_forward_pre_hook(
        lambda module, args: batch_sizes.append(args[0].shape[0])
    )
    try:
        a = generator.generate(SETTINGS.replace(guidance_scale=1.0, negative_prompt="")).frames
        b = generator.generate(SETTINGS.replace(guidance_scale=1.0, negative_prompt="blurry low quality")).frames
    finally:
        handle.remove()
    assert set(batch_sizes) == {1}
    assert np.array_equal(a, b)


def test_out_of_memory_is_reported_and_models_stay(generator, monkeypatch):
    freed = []
    monkeypatch.setattr(oom, "free_cuda_cache", lambda: freed.append(True))  # the one out-of-memory guard

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    unet = generator.components.unet
    monkeypatch.setattr(unet, "forward", out_of_memory)
    with pytest.raises(GPUOutOfMemoryError) as info:
        generator.generate(SETTINGS)
    message = str(info.value)
    for hint in ("frames", "size", "steps", "cpu_offload", "vae_slice_frames"):
        assert hint in message
    assert freed
    assert models.REGISTRY.is_loaded(generator.key)
    monkeypatch.undo()
    assert generator.components.unet is unet
    assert generator.generate(SETTINGS.replace(num_steps=1)).frames.shape == (8, 32, 32, 3)


def test_missing_model_offline_names_the_id_and_what_to_do(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The hub reads the variable at import; patch the constant too so nothing can reach the network.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(models, "REGISTRY", models.ModelRegistry())
    for model_id in (str(tmp_path / "no-such-model"), "vid2vid-tests/no-such-model"):
        with pytest.raises(ModelLoadError) as info:
            DiffusersTextToVideo(model_id, device="cpu").load()
        message = str(info.value)
        assert model_id in message
        assert "HF_HUB_OFFLINE" in message and "HF_HOME" in message
    assert models.REGISTRY.total_loads == 0


def test_reference_layout_and_defaults(tiny_path):
    from pathlib import Path

    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (Path(tiny_path) / sub).is_dir()
    assert (Path(tiny_path) / "model_index.json").is_file()
    assert DiffusersTextToVideo(device="cpu").model_id == DEFAULT_T2V_MODEL == "ali-vilab/text-to-video-ms-1.7b"
    cpu = DiffusersTextToVideo(device="cpu")
    assert (cpu.dtype, cpu.variant) == ("float32", None)
    cuda = DiffusersTextToVideo(device="cuda")
    assert (cuda.dtype, cuda.variant) == ("float16", "fp16")
    assert DiffusersTextToVideo(device="cuda", cpu_offload=True).key != cuda.key  # hooks are never shared


def test_cpu_offload_is_ignored_on_the_cpu_with_a_note(generator, tiny_path):
    offload = DiffusersTextToVideo(tiny_path, device="cpu", cpu_offload=True)
    assert offload.cpu_offload is False and offload.key == generator.key
    result = offload.generate(SETTINGS.replace(num_steps=1))
    assert any("CPU offload" in note for note in result.notes)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_variant_and_cpu_offload(tiny_path):
    resident = DiffusersTextToVideo(tiny_path, device="cuda")
    offloaded = DiffusersTextToVideo(tiny_path, device="cuda", cpu_offload=True)
    assert (resident.dtype, resident.variant) == ("float16", "fp16")
    first = resident.generate(SETTINGS)
    assert not any("fp16 weights" in note for note in first.notes)  # the tiny folder has fp16 files
    assert first.frames.dtype == np.uint8 and first.frames.shape == (8, 32, 32, 3)
    second = offloaded.generate(SETTINGS)
    assert np.abs(first.frames.astype(int) - second.frames.astype(int)).max() <= 1
    # After the run every offloaded model is back on the CPU.
    for model in (offloaded.components.text_encoder, offloaded.components.unet, offloaded.components.vae):
        assert next(model.parameters()).device.type == "cpu"
