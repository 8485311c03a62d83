"""Variations: N seeds of the same words in one batched pass, each its own run, each reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vid2vid_widgets import oom
from vid2vid_widgets.errors import InvalidSettingsError
from vid2vid_widgets.generation import make_generator
from vid2vid_widgets.generation.base import GenerationSettings
from vid2vid_widgets.pipeline import Vid2VidPipeline

SETTINGS = GenerationSettings(prompt="a horse riding on the beach", negative_prompt="blurry", seed=1,
                              num_frames=8, num_steps=3, height=32, width=32)
SEEDS = [21, 22, 23]


@pytest.fixture(scope="module")
def generator():
    gen = make_generator("diffusers", models="tiny", device="cpu")
    gen.load()
    return gen


def _moving_frames(count: int = 8) -> np.ndarray:
    y, x = np.mgrid[0:48, 0:48]
    return np.stack([np.stack([(x * 5 + 9 * t) % 256, (y * 5) % 256, np.full_like(x, 90)], -1)
                     for t in range(count)]).astype(np.uint8)


@pytest.mark.parametrize("strength", [1.0, 0.6], ids=["words", "video-to-video"])
@pytest.mark.parametrize("scheduler", ["dpm++", "ddim"])
def test_batched_and_one_after_another_give_the_same_frames_per_seed(generator, strength, scheduler):
    settings = SETTINGS.replace(strength=strength, scheduler=scheduler)
    init = _moving_frames() if strength < 1 else None
    batched = generator._generate_float(settings, seeds=SEEDS, init_frames=init)
    assert [r.settings.seed for r in batched] == SEEDS and all(r.batch == 3 for r in batched)
    for result, seed in zip(batched, SEEDS):
        alone = generator._generate_float(settings.replace(seed=seed), init_frames=init)
        # Same noise from the same seed; only the kernels' summation order differs in a batch.
        np.testing.assert_allclose(result.frames, alone.frames, atol=1e-4, rtol=0)
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(batched[a].frames - batched[b].frames).mean() > 1e-3  # three different videos


def test_pipeline_variations_are_runs_that_regenerate_exactly(tmp_path):
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path, num_frames=4, num_steps=2, height=32, width=32)
    runs = pipe.variations("a dog playing with a ball", 3, seed=40)
    assert [r.seed for r in runs] == [40, 41, 42]
    assert len({r.run_dir for r in runs}) == 3
    for index, run in enumerate(runs, 1):
        record = json.loads((run.run_dir / "run.json").read_text())
        assert record["variation"] == {"index": index, "of": 3, "seeds": [40, 41, 42], "batched": True}
        assert record["settings"]["seed"] == run.seed
        again = pipe.regenerate(run.run_dir)
        assert np.array_equal(again.frames, run.frames), f"variation {index} did not regenerate exactly"
    assert not np.array_equal(runs[0].frames, runs[1].frames) and not np.array_equal(runs[1].frames, runs[2].frames)
    # The seed alone (what "Use this seed" puts in the settings) gives the same video, to rounding.
    alone = pipe.generate("a dog playing with a ball", seed=41)
    assert np.abs(alone.frames.astype(int) - runs[1].frames.astype(int)).max() <= 1
    # Random seeds when none is set; the history holds every variation as its own run.
    random_runs = pipe.variations("a dog playing with a ball", 2)
    assert len({r.seed for r in random_runs}) == 2
    assert len(pipe.history()) == 3 + 3 + 1 + 2


def test_out_of_memory_falls_back_to_one_after_another_with_a_note(tmp_path, generator, monkeypatch):
    monkeypatch.setattr(oom, "free_cuda_cache", lambda: None)
    real_run = generator._run
    batches = []

    def run(c, settings, seeds, *args, **kwargs):
        batches.append(len(seeds))
        if len(seeds) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return real_run(c, settings, seeds, *args, **kwargs)

    monkeypatch.setattr(generator, "_run", run)
    pipe = Vid2VidPipeline(models="tiny", generator=generator, output_dir=tmp_path)
    runs = pipe.variations("a cat in the snow", seeds=[5, 6], num_frames=4, num_steps=2, height=32, width=32)
    assert batches == [2, 1, 1]
    assert [r.seed for r in runs] == [5, 6]
    assert all("one after another" in r.notes[0] for r in runs)
    assert all(r.record.data["variation"]["batched"] is False for r in runs)
    monkeypatch.undo()
    assert np.array_equal(pipe.regenerate(runs[1].run_dir).frames, runs[1].frames)


def test_variation_counts_and_seeds_are_checked(tmp_path):
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path)
    for bad in (dict(n=1), dict(n=5), dict(seeds=[3, 3]), dict(seeds=[1, 2, 3, 4, 5])):
        with pytest.raises(InvalidSettingsError, match="2 to 4"):
            pipe.variations("a dog", **bad)
    assert pipe.history() == []


def test_variations_preview_strips_have_one_row_per_video_and_are_saved_per_run(tmp_path):
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path, num_frames=4, num_steps=2, height=32, width=32)
    seen = []
    runs = pipe.variations("a bird flying in the sky", 2, seed=9, on_preview=seen.append, preview_every=1,
                           save_previews=True)
    assert [p.step for p in seen] == [1, 2] and seen[0].latent_shape[0] == 2
    row_height = seen[0].image.shape[0] // 2
    from PIL import Image

    for index, run in enumerate(runs):
        files = [run.run_dir / p["file"] for p in run.record.data["previews"]]
        assert len(files) == 2
        with Image.open(files[-1]) as picture:
            saved = np.asarray(picture.convert("RGB"))
        assert np.array_equal(saved, seen[-1].image[index * row_height:(index + 1) * row_height])


@pytest.mark.slow  # loading the tiny ModelScope model takes about 10 s
def test_modelscope_backend_batches_too():
    pytest.importorskip("modelscope", reason='needs the [modelscope] extra: pip install "vid2vid-widgets[modelscope]"')
    pytest.importorskip("open_clip", reason='needs the [modelscope] extra: pip install "vid2vid-widgets[modelscope]"')
    gen = make_generator("modelscope", models="tiny", device="cpu", dtype="float32")
    settings = GenerationSettings(prompt="a red fox running in the snow", seed=7, num_frames=2, height=16, width=16,
                                  num_steps=2, scheduler="ddim")
    shown = []
    gen.generate_variations(settings, [7, 8], on_preview=shown.append, preview_every=1)
    assert [(p.step, p.latent_shape[0]) for p in shown] == [(1, 2), (2, 2)]
    batched = gen._generate_float(settings, seeds=[7, 8])
    alone = [gen._generate_float(settings.replace(seed=seed)) for seed in (7, 8)]
    # The tiny ModelScope UNet (random, 1024-wide context) turns batch-size rounding (1e-4 in its
    # output) into up to 1e-2 in the frames after guidance 9: still the same video, 1/20 of what
    # another seed changes.
    between_seeds = np.abs(alone[0].frames - alone[1].frames).mean()
    for made_together, made_alone in zip(batched, alone):
        assert np.abs(made_together.frames - made_alone.frames).mean() < between_seeds / 20
