"""The original ModelScope text-to-video backend: ``damo/text-to-video-synthesis`` through ``modelscope``.

DESIGN decision 2: the checkpoint of the app we replace stays available. The weights are loaded by
modelscope's own model class (``TextToVideoSynthesis``), so the network and the checkpoint files
are exactly the original ones; only the driving is ours:

* our own DDIM loop calls the model's per-step function (``diffusion.ddim_sample``), so steps,
  guidance, progress and cancel work (its ``forward`` hard-codes 50 steps, guidance 9 and the
  frame count, and has no hook);
* we draw the starting noise from our own seeded generator, so a seed repeats a video (the same
  numbers as ``torch.manual_seed(seed)`` before modelscope's pipeline);
* frames come back as uint8 arrays for ``video.encode_mp4``: modelscope's writer makes mp4v files
  that browsers refuse and calls ``torchvision.io.write_video`` (gone since torchvision 0.26).

Needs the optional extra: ``pip install "vid2vid-widgets[modelscope]"``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Dict, Iterator, List, Optional, Tuple

from .._compat import torch_dtype
from ..errors import MissingDependencyError, ModelLoadError
from ..models import REGISTRY, is_local_folder, model_source
from .base import GenerationSettings, GeneratorBase, Sampler, truncation_note

DEFAULT_MODELSCOPE_MODEL = "damo/text-to-video-synthesis"
# The same files mirrored on the Hugging Face hub; fetched with huggingface_hub instead.
HF_MIRRORS = ("ali-vilab/modelscope-damo-text-to-video-synthesis",)

PIP_COMMAND = 'pip install "vid2vid-widgets[modelscope]"'
# import name -> why it is needed; all come with the [modelscope] extra
_REQUIRED_MODULES = {
    "modelscope": "the model class",
    "open_clip": "the text encoder (open_clip_torch==2.24.0)",
    "addict": "modelscope's config reader",
    "simplejson": "modelscope's config reader",
    "sortedcontainers": "modelscope's config reader",
    "einops": "the model's tensor reshapes",
    "torchvision": "open_clip",
}
# From open_clip 2.26 on the text transformer is batch-first, and the embedder's own permute
# breaks with "2D attn_mask is [77,77], should be (1,1)" (FACTS).
OPEN_CLIP_VERSION = "2.24.0"

TINY_CONFIG_DIR = "open_clip_config"  # a folder with its own ViT-H-14.json (the tiny test models)
LATENT_SCALE = 0.18215  # the VAE's scale factor, as in TextToVideoSynthesis.forward
TRAINED_FPS = 8

_load_lock = threading.Lock()  # open_clip's config registry and torch.load are process-wide


def _missing_modules() -> List[str]:
    """Required modules that cannot be found; cheap (no import), so choosing the backend fails fast."""
    missing = []
    for name in _REQUIRED_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):  # a parent package hidden or broken counts as missing
            missing.append(name)
    return missing


def check_modelscope_installed() -> None:
    """Raise ``MissingDependencyError`` (with the pip command) unless the [modelscope] extra is usable."""
    missing = _missing_modules()
    if missing:
        raise MissingDependencyError(
            f"The 'modelscope' backend needs the optional [modelscope] extra (missing: {', '.join(missing)}). "
            f"Install it with:  {PIP_COMMAND}  and restart the kernel."
        )
    try:
        version = importlib.metadata.version("open_clip_torch")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version is not None and not version.startswith(OPEN_CLIP_VERSION):
        raise MissingDependencyError(
            f"open_clip_torch {version} is installed, but ModelScope's text encoder only works with "
            f"open_clip_torch=={OPEN_CLIP_VERSION} (later versions changed the tensor layout). "
            f"Install it with:  pip install open_clip_torch=={OPEN_CLIP_VERSION}  (or {PIP_COMMAND})."
        )


def _import_model_class():
    """modelscope's ``TextToVideoSynthesis``; its lazy importer reports a missing package as RuntimeError."""
    check_modelscope_installed()
    try:
        from modelscope.models.multi_modal.video_synthesis.text_to_video_synthesis_model import (
            TextToVideoSynthesis,
        )
    except (ImportError, RuntimeError) as err:
        raise MissingDependencyError(
            f"modelscope's text-to-video model could not be imported ({err}). Install the extra with:  "
            f"{PIP_COMMAND}"
        ) from err
    return TextToVideoSynthesis


def _snapshot_download(model_id: str, revision: Optional[str]) -> str:
    """Download (or find in the cache) the checkpoint folder; a separate function so tests can replace it."""
    if model_id in HF_MIRRORS:
        from huggingface_hub import snapshot_download

        return snapshot_download(model_id, revision=revision)
    from modelscope.hub.snapshot_download import snapshot_download

    return snapshot_download(model_id, revision=revision) if revision else snapshot_download(model_id)


@contextlib.contextmanager
def _open_clip_config(folder: Path) -> Iterator[None]:
    """Register the folder's own "ViT-H-14" config while it loads, then restore open_clip's registry.

    The embedder always asks open_clip for "ViT-H-14". A real checkpoint uses the config open_clip
    ships; the tiny test folders bring a small one in ``open_clip_config/``. ``add_model_config``
    changes a process-wide registry for good, so the previous state is put back afterwards:
    otherwise a real model loaded later in the same kernel would be built with the tiny shapes.
    """
    config_dir = folder / TINY_CONFIG_DIR
    if not (config_dir / "ViT-H-14.json").is_file():
        yield
        return
    import open_clip
    from open_clip import factory

    saved_configs = dict(factory._MODEL_CONFIGS)
    saved_paths = list(factory._MODEL_CONFIG_PATHS)
    open_clip.add_model_config(config_dir)
    try:
        yield
    finally:
        factory._MODEL_CONFIG_PATHS[:] = saved_paths
        factory._MODEL_CONFIGS = saved_configs


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Make modelscope's and open_clip's bare ``torch.load`` calls pass ``weights_only=True``.

    torch >= 2.6 defaults to it already; on older torch (an old Colab image) those loaders would
    unpickle arbitrary objects, so the flag is made explicit while our load runs.
    """
    import inspect

    import torch

    original = torch.load
    if "weights_only" not in inspect.signature(original).parameters:  # torch < 1.13 has no such flag
        yield
        return

    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("weights_only", True)
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


@dataclass
class _Loaded:
    """What the registry keeps resident for one (model id, device, dtype)."""

    model: Any  # modelscope TextToVideoSynthesis
    folder: str
    size_unit: int  # height and width must be multiples of this (VAE x UNet downsampling)


class ModelScopeTextToVideo(GeneratorBase):
    """The original ModelScope text-to-video model, driven by our loop (``backend="modelscope"``).

    ``model_id`` is a ModelScope id (default ``damo/text-to-video-synthesis``), its Hugging Face
    mirror ``ali-vilab/modelscope-damo-text-to-video-synthesis``, or a local folder holding
    ``configuration.json`` and the three checkpoint files. Offline, only a local folder works.

    Honoured settings: prompt, negative prompt (the unconditional branch of guidance), seed, frames,
    height and width (rounded to the model's size unit, with a note), steps and guidance (DDIM).
    Not honoured, with a note in ``GeneratedFrames.notes``: scheduler "dpm++" (the model has DDIM
    only) and fps other than 8 (playback speed only: the model has no frame-rate input).
    """

    backend = "modelscope"
    role = "modelscope"

    def __init__(
        self,
        model_id: str = DEFAULT_MODELSCOPE_MODEL,
        *,
        revision: Optional[str] = None,
        device: str = "auto",
        dtype: str = "auto",
        vae_slice_frames: Optional[int] = 8,
    ) -> None:
        check_modelscope_installed()  # choosing the backend without the extra fails here, clearly
        super().__init__(model_id, revision=revision, device=device, dtype=dtype, vae_slice_frames=vae_slice_frames)

    # -- loading -------------------------------------------------------------------------------
    def _resolve_folder(self) -> Path:
        if is_local_folder(self.model_id):
            folder = Path(model_source(self.model_id))
            if not folder.is_dir():
                raise ModelLoadError(f"Could not load the ModelScope model {self.model_id!r}: there is no such folder.")
        else:
            try:
                folder = Path(_snapshot_download(self.model_id, self.revision))
            except Exception as err:  # offline, unknown id, bad revision: all end the same way
                raise ModelLoadError(
                    f"Could not download the ModelScope model {self.model_id!r} ({type(err).__name__}: {err}). "
                    "Without a network, pass a local folder instead: on a machine with internet run  "
                    f"python -c \"from modelscope.hub.snapshot_download import snapshot_download; "
                    f"print(snapshot_download('{DEFAULT_MODELSCOPE_MODEL}'))\"  (or  huggingface-cli download "
                    f"{HF_MIRRORS[0]} --local-dir ms-t2v), copy that folder here and use "
                    "ModelScopeTextToVideo('/path/to/folder') (--model /path/to/folder)."
                ) from err
        if not (folder / "configuration.json").is_file():
            raise ModelLoadError(
                f"{str(folder)!r} is not a ModelScope text-to-video folder: configuration.json is missing. "
                "It should hold configuration.json, text2video_pytorch_model.pth, VQGAN_autoencoder.pth "
                "and open_clip_pytorch_model.bin."
            )
        return folder

    def _load(self) -> _Loaded:
        import torch

        model_class = _import_model_class()
        folder = self._resolve_folder()
        try:
            with _load_lock, _open_clip_config(folder), _weights_only_loads():
                # Built on the CPU, then placed by us: the class would put the fp32 UNet (6.8 GB) on
                # the GPU before we can halve it, and leaves the VAE and text encoder on the CPU
                # when the config says tiny_gpu.
                model = model_class(str(folder), device="cpu")
        except MissingDependencyError:
            raise
        except pickle.UnpicklingError as err:
            raise ModelLoadError(
                f"A checkpoint in {str(folder)!r} holds more than plain tensors, and checkpoints are "
                f"loaded with weights_only=True for safety ({err}). Use the original files of "
                f"{DEFAULT_MODELSCOPE_MODEL!r}."
            ) from err
        except (FileNotFoundError, KeyError, RuntimeError, ValueError, OSError) as err:
            raise ModelLoadError(
                f"Could not load the ModelScope model from {str(folder)!r}: {type(err).__name__}: {err}. "
                "Check that the folder is complete (download it again if a file was cut short)."
            ) from err

        device = torch.device(self.device)
        dtype = torch_dtype(self.dtype)
        model.device = device
        # The embedder's ``device`` attribute defaults to "cuda" and is where it sends the tokens:
        # on a CPU-only machine that is an error, so it must follow the real device.
        model.clip_encoder.device = device
        # UNet and text encoder in the run dtype (fp16 halves the 1.7 B UNet to 3.4 GB); the VAE
        # stays fp32 as in the original, which decodes fp32 weights under autocast.
        model.sd_model.to(device=device, dtype=dtype).eval()
        model.clip_encoder.to(device=device, dtype=dtype).eval()
        model.autoencoder.to(device=device).eval()

        dim_mult = list(model.config.model.model_cfg["unet_dim_mult"])
        size_unit = 8 * 2 ** (len(dim_mult) - 1)  # the UNet upsamples by exact 2x: latents must divide
        return _Loaded(model=model, folder=str(folder), size_unit=size_unit)

    @property
    def size_unit(self) -> int:
        """Its UNet halves the latents once per level: the size unit comes from the loaded config."""
        return self._components().size_unit

    def _describe_extra(self) -> Dict[str, Any]:
        info: Dict[str, Any] = {"scheduler": "ddim"}
        if REGISTRY.is_loaded(self.key):
            info["folder"] = self._components().folder
        return info

    # -- the backend's part of a run ----------------------------------------------------------------
    def _adapt(self, settings: GenerationSettings, loaded: _Loaded) -> Tuple[GenerationSettings, List[str]]:
        """Fit settings to what this model can do, with a note for everything changed or ignored."""
        changes: Dict[str, Any]
        changes, notes = settings.fitted_sizes(loaded.size_unit, " (this model's size unit)")
        num_timesteps = loaded.model.diffusion.num_timesteps
        if settings.num_steps > num_timesteps:
            notes.append(f"steps {settings.num_steps} is more than the model's {num_timesteps} timesteps; "
                         f"using {num_timesteps}.")
            changes["num_steps"] = num_timesteps
        if settings.scheduler != "ddim":
            notes.append(f"scheduler {settings.scheduler!r} is not available in the ModelScope model, "
                         "which only has DDIM; used DDIM.")
            changes["scheduler"] = "ddim"
        if settings.fps != TRAINED_FPS:
            notes.append(f"fps {settings.fps} only sets the playback speed: the model has no frame-rate "
                         f"input and was trained on {TRAINED_FPS} fps clips.")
        if settings.negative_prompt.strip() and settings.guidance_scale == 1:
            notes.append("the negative prompt has no effect at guidance 1 (no unconditional branch).")
        return settings.replace(**changes), notes

    def _run_context(self) -> ContextManager[Any]:
        import torch

        stack = contextlib.ExitStack()
        device = torch.device(self.device)
        dtype = torch_dtype(self.dtype)
        # The original runs under CUDA autocast (fp16 matmuls, fp32 norms); on the CPU its autocast
        # is a no-op, so fp32 there stays plain fp32 and matches its pipeline number for number.
        stack.enter_context(torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32))
        # ddim_sample draws (unused, eta=0) noise from the global generator each step: fork it
        # so a caller's own torch.manual_seed sequence is not disturbed by a generation.
        stack.enter_context(torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []))
        return stack

    def _encode_prompt(self, loaded: _Loaded, settings: GenerationSettings, notes: List[str]) -> Any:
        for what, text in (("caption", settings.prompt), ("negative prompt", settings.negative_prompt)):
            cut = _truncated_words(text)
            if cut:
                notes.append(truncation_note(what, 77, cut))
        cond = loaded.model.clip_encoder(settings.prompt)
        uncond = loaded.model.clip_encoder(settings.negative_prompt.strip())  # "" is the original's choice
        return cond, uncond

    def _latent_shape(self, loaded: _Loaded, settings: GenerationSettings) -> Tuple[int, ...]:
        return (1, 4, settings.num_frames, settings.height // 8, settings.width // 8)

    def _sampler(self, loaded: _Loaded, settings: GenerationSettings, cond: Any, generator: Any) -> Sampler:
        import torch

        model, diffusion = loaded.model, loaded.model.diffusion
        device = torch.device(self.device)
        steps = settings.num_steps
        # ddim_sample steps back by num_timesteps // steps; timesteps spaced by that stride, as
        # in its own ddim_sample_loop (identical for steps dividing 1000, e.g. 10, 25, 50; its
        # loop would run one step more otherwise, ours runs exactly ``steps``).
        stride = diffusion.num_timesteps // steps
        timesteps = [min(1 + stride * i, diffusion.num_timesteps - 1) for i in reversed(range(steps))]
        guided = settings.guidance_scale != 1
        model_kwargs: Any = [{"y": cond[0]}, {"y": cond[1]}] if guided else {"y": cond[0]}

        last: Dict[str, Any] = {}

        def step(xt: Any, timestep: int) -> Any:
            t = torch.full((xt.shape[0],), timestep, dtype=torch.long, device=device)  # one per video
            xt, last["x0"] = diffusion.ddim_sample(xt, t, model.sd_model, model_kwargs,
                                                   guide_scale=settings.guidance_scale if guided else None,
                                                   ddim_timesteps=steps, eta=0.0)
            return xt

        def add_noise(clean: Any, noise: Any, timestep: int) -> Any:
            # q(x_t | x_0) with the model's own schedule (its diffusion has no q_sample of its own).
            alpha = diffusion.alphas_cumprod[timestep].to(device=clean.device, dtype=torch.float64)
            return (alpha.sqrt() * clean + (1 - alpha).sqrt() * noise).to(clean.dtype)

        return Sampler(timesteps=timesteps, step=step, add_noise=add_noise, begin=lambda skipped: timesteps[skipped:],
                       estimate_x0=lambda: last["x0"])  # ddim_sample returns its x0 beside the next sample

    def _repeat_cond(self, cond: Any, videos: int) -> Any:
        return tuple(part.repeat_interleave(videos, dim=0) for part in cond)

    def _sd_family_vae(self, loaded: _Loaded) -> bool:
        # TextToVideoSynthesis hard-codes Stable Diffusion 1.x's VAE (its ddconfig and 0.18215).
        return True

    def _encode_slice(self, loaded: _Loaded, pixels: Any) -> Tuple[Any, Any]:
        posterior = loaded.model.autoencoder.encode(pixels)
        return posterior.mean, posterior.std

    def _latent_scale(self, loaded: _Loaded) -> float:
        return LATENT_SCALE

    def _decode_slice(self, loaded: _Loaded, latents: Any) -> Any:
        # 1/scale * x as in its forward (not x / scale: one ulp apart, and parity is exact)
        latents = (1.0 / LATENT_SCALE * latents)[0].transpose(0, 1)  # (c, f, h, w) -> (f, c, h, w)
        return loaded.model.autoencoder.decode(latents)

    @staticmethod
    def _to_uint8(images: Any) -> Any:
        import torch

        # Truncated, not rounded, as modelscope's tensor2vid does (x * 255 cast to uint8).
        return (images * 255).to(torch.uint8)


def _truncated_words(text: str) -> Optional[str]:
    """What open_clip's tokenizer cuts off (77 tokens with start/end), or None when it all fits."""
    if not text.strip():
        return None
    from open_clip.tokenizer import _tokenizer

    tokens = _tokenizer.encode(text)
    limit = 75  # 77 minus the start and end tokens
    if len(tokens) <= limit:
        return None
    return _tokenizer.decode(tokens[limit:]).strip()


__all__ = [
    "ModelScopeTextToVideo",
    "DEFAULT_MODELSCOPE_MODEL",
    "HF_MIRRORS",
    "PIP_COMMAND",
    "check_modelscope_installed",
]
