"""The "modelscope" backend: the original damo/text-to-video-synthesis through modelscope's own classes.

A tiny random folder in the real ModelScope layout goes through the real loading path
(``TextToVideoSynthesis``), so these tests need the [modelscope] extra; without it they skip with a
reason (CI installs it). Small sizes and few steps keep the file fast on a CPU.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

import numpy as np
import pytest

from vid2vid_widgets.errors import GenerationCancelled, MissingDependencyError, ModelLoadError
from vid2vid_widgets.generation.base import GenerationSettings
from vid2vid_widgets.generation import modelscope_t2v
from vid2vid_widgets.generation.modelscope_t2v import PIP_COMMAND, ModelScopeTextToVideo
from vid2vid_widgets.models import REGISTRY
from vid2vid_widgets.progress import CancelToken

pytestmark = [pytest.mark.modelscope, pytest.mark.filterwarnings("ignore::UserWarning")]

# Small and quick: the tiny UNet's size unit is 16 (VAE 8 x one UNet downsample). The tiny VAE has
# the real (hard-coded) architecture, so pixels cost more than steps here.
FAST = dict(prompt="a red fox running in the snow", seed=7, num_frames=2, height=16, width=16,
            num_steps=2, guidance_scale=9.0, scheduler="ddim", fps=8)


def _need_extra() -> None:
    pytest.importorskip("modelscope", reason='needs the [modelscope] extra: pip install "vid2vid-widgets[modelscope]"')
    pytest.importorskip("open_clip", reason='needs the [modelscope] extra: pip install "vid2vid-widgets[modelscope]"')


@pytest.fixture(scope="module")
def tiny_folder() -> str:
    _need_extra()
    from vid2vid_widgets.tiny import tiny_model_path

    return tiny_model_path("modelscope")


@pytest.fixture(scope="module")
def generator(tiny_folder) -> ModelScopeTextToVideo:
    gen = ModelScopeTextToVideo(tiny_folder, device="cpu", dtype="float32")
    gen.load()
    return gen


def test_tiny_folder_loads_through_modelscope_model_class(generator, tiny_folder):
    from modelscope.models.multi_modal.video_synthesis import TextToVideoSynthesis
    from open_clip import factory

    loaded = REGISTRY.get(generator.key, lambda: pytest.fail("the model should already be resident"))
    assert isinstance(loaded.model, TextToVideoSynthesis)
    assert generator.key.role == "modelscope"
    generator.load()  # resident: no second load
    assert REGISTRY.load_counts[generator.key] == 1
    # the embedder must send its tokens to the real device, not its hard-coded "cuda"
    assert str(loaded.model.clip_encoder.device) == "cpu"
    # the tiny ViT-H-14 was registered only while loading: open_clip's own config is back
    assert factory.get_model_config("ViT-H-14")["text_cfg"]["layers"] == 24
    assert generator.describe() == {
        "backend": "modelscope", "model_id": tiny_folder, "revision": None, "device": "cpu",
        "dtype": "float32", "scheduler": "ddim", "folder": tiny_folder,
    }


def test_frames_honour_frames_height_width_and_progress_counts_steps(generator):
    reports = []
    result = generator.generate(GenerationSettings(**{**FAST, "num_frames": 3, "height": 32, "width": 16, "num_steps": 3}),
                                on_progress=reports.append)
    assert result.frames.shape == (3, 32, 16, 3)
    assert result.frames.dtype == np.uint8
    assert result.frames.std() > 1  # not a flat image: the plumbing carries signal
    denoise = [r for r in reports if r.stage == "denoise"]
    assert [r.step for r in denoise] == [1, 2, 3] and {r.total for r in denoise} == {3}
    assert result.notes == []
    assert result.settings.seed == 7 and result.settings.num_steps == 3
    assert {"encode_prompt", "denoise", "decode"} <= set(result.timings)
    assert result.model["backend"] == "modelscope"


def test_same_seed_same_frames_other_seed_other_frames(generator):
    one_step = {**FAST, "num_steps": 1}
    first = generator.generate(GenerationSettings(**one_step)).frames
    again = generator.generate(GenerationSettings(**one_step)).frames
    other = generator.generate(GenerationSettings(**{**one_step, "seed": 8})).frames
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_negative_prompt_and_guidance_change_the_output(generator):
    base = generator.generate(GenerationSettings(**FAST)).frames
    negative = generator.generate(GenerationSettings(**{**FAST, "negative_prompt": "blurry, dark"})).frames
    unguided = generator.generate(GenerationSettings(**{**FAST, "guidance_scale": 1.0}))
    assert not np.array_equal(base, negative)
    assert not np.array_equal(base, unguided.frames)
    assert unguided.notes == []


def test_cancel_stops_at_a_step_boundary(generator):
    token = CancelToken()
    seen = []

    def on_progress(progress):
        seen.append(progress)
        if progress.step == 2:
            token.cancel()

    with pytest.raises(GenerationCancelled):
        generator.generate(GenerationSettings(**{**FAST, "num_steps": 5}), on_progress=on_progress, cancel=token)
    assert [p.step for p in seen] == [1, 2]  # no third step, no decode


def test_settings_the_model_cannot_honour_are_noted(generator):
    result = generator.generate(GenerationSettings(**{**FAST, "scheduler": "dpm++", "fps": 12, "width": 24,
                                                      "num_steps": 1, "negative_prompt": "x",
                                                      "guidance_scale": 1.0}))
    text = " ".join(result.notes)
    assert "DDIM" in text and "dpm++" in text
    assert "fps 12" in text
    assert "width 24" in text and "32" in text
    assert "negative prompt has no effect" in text
    assert result.frames.shape == (2, 16, 32, 3)
    assert result.settings.scheduler == "ddim" and result.settings.width == 32


def test_overlong_prompt_is_noted(generator):
    long_prompt = " ".join(["fox"] * 40 + ["zebra"] * 60)
    result = generator.generate(GenerationSettings(**{**FAST, "prompt": long_prompt, "num_steps": 1}))
    assert any("77 tokens" in note for note in result.notes)


def test_missing_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError) as info:
        ModelScopeTextToVideo("damo/text-to-video-synthesis", device="cpu")
    assert PIP_COMMAND in str(info.value)
    assert PIP_COMMAND == 'pip install "vid2vid-widgets[modelscope]"'


def test_wrong_open_clip_version_is_refused(monkeypatch):
    _need_extra()
    real_version = modelscope_t2v.importlib.metadata.version
    monkeypatch.setattr(modelscope_t2v.importlib.metadata, "version",
                        lambda name: "2.26.1" if name == "open_clip_torch" else real_version(name))
    with pytest.raises(MissingDependencyError, match="open_clip_torch==2.24.0"):
        ModelScopeTextToVideo(device="cpu")


def test_offline_model_id_gives_model_load_error(monkeypatch):
    _need_extra()

    def offline(model_id, revision):
        raise ConnectionError("Failed to resolve 'modelscope.cn'")

    monkeypatch.setattr(modelscope_t2v, "_snapshot_download", offline)
    gen = ModelScopeTextToVideo("damo/text-to-video-synthesis", revision="v-offline-test", device="cpu")
    with pytest.raises(ModelLoadError) as info:
        gen.load()
    message = str(info.value)
    assert "damo/text-to-video-synthesis" in message and "local folder" in message
    assert not REGISTRY.is_loaded(gen.key)


def test_folder_without_configuration_is_refused(tmp_path):
    _need_extra()
    with pytest.raises(ModelLoadError, match="configuration.json"):
        ModelScopeTextToVideo(str(tmp_path), device="cpu").load()


def _import_modelscope_pipeline(monkeypatch):
    """modelscope's pipeline module, importable without two packages it needs only elsewhere.

    ``modelscope.pipelines.base`` imports ``datasets`` (through msdatasets, for an isinstance check
    on inputs) and the text-to-video pipeline imports ``cv2`` (for nothing on this path: its writer,
    which we replace). Neither is in the [modelscope] extra, so stand-ins fill in when missing.
    """
    try:
        import modelscope.msdatasets  # noqa: F401
    except ImportError:
        stub = types.ModuleType("modelscope.msdatasets")
        stub.__spec__ = importlib.machinery.ModuleSpec("modelscope.msdatasets", None)
        stub.MsDataset = type("MsDataset", (), {})
        monkeypatch.setitem(sys.modules, "modelscope.msdatasets", stub)
    try:
        import cv2  # noqa: F401
    except ImportError:
        stub = types.ModuleType("cv2")
        stub.__spec__ = importlib.machinery.ModuleSpec("cv2", None)  # modelscope checks find_spec
        monkeypatch.setitem(sys.modules, "cv2", stub)
    from modelscope.pipelines import pipeline
    from modelscope.pipelines.multi_modal import text_to_video_synthesis_pipeline as module

    return pipeline, module


def test_parity_with_modelscope_own_pipeline(generator, tiny_folder, monkeypatch):
    """Same folder, prompt and seed: our frames equal those of ``pipeline("text-to-video-synthesis")``."""
    import torch

    pipeline, module = _import_modelscope_pipeline(monkeypatch)
    captured = {}

    def keep_tensor(self, inputs, **kwargs):  # its writer is replaced: compare before any encoding
        captured["frames"] = np.stack(module.tensor2vid(inputs["video"].clone()))
        return {}

    monkeypatch.setattr(module.TextToVideoSynthesisPipeline, "postprocess", keep_tensor)
    # Its pipeline around the model our generator loaded (a Model instance is a valid ``model=``):
    # same weights, and no second load of the tiny model on a slow CI machine.
    model = REGISTRY.get(generator.key, lambda: pytest.fail("not resident")).model
    pipe = pipeline("text-to-video-synthesis", model=model, device="cpu")
    assert pipe.model is model
    # Its frame count comes from the config and its 50 DDIM steps are hard-coded in forward();
    # 10 steps (a divisor of 1000: the same timesteps as our loop) keep the test quick.
    monkeypatch.setattr(model.config.model.model_args, "max_frames", 2)
    its_loop = model.diffusion.ddim_sample_loop
    monkeypatch.setattr(model.diffusion, "ddim_sample_loop",
                        lambda *args, **kwargs: its_loop(*args, **{**kwargs, "ddim_timesteps": 10}))
    torch.manual_seed(11)
    pipe({"text": "a red fox running in the snow", "height": 16, "width": 16})  # guidance 9, its own

    ours = generator.generate(GenerationSettings(
        prompt="a red fox running in the snow", seed=11, num_frames=2, height=16, width=16,
        num_steps=10, guidance_scale=9.0, scheduler="ddim"))
    theirs = captured["frames"]
    assert ours.frames.shape == theirs.shape == (2, 16, 16, 3)
    # Same network, same noise, same DDIM arithmetic in fp32: on one machine the frames come out
    # identical (seen: 0 differing values). We still allow one uint8 level on a tiny share of
    # values, because oneDNN may pick another convolution kernel for our VAE decode batches than
    # for its single decode call, and a 1-ulp float difference can cross a rounding boundary.
    diff = np.abs(ours.frames.astype(int) - theirs.astype(int))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 1e-3
