"""The default text-to-video backend: the diffusers components of ModelScope's 1.7B model.

We load ``UNet3DConditionModel``, ``AutoencoderKL``, ``CLIPTextModel`` and ``CLIPTokenizer`` and run
our own denoising loop instead of ``TextToVideoSDPipeline``: that pipeline is deprecated (it warns on
every call) and has no step-end hook, so it can neither report progress nor stop at a step
boundary. The loop below mirrors the pipeline's arithmetic operation for operation (same latents from
the same CPU generator, same guidance formula, same decoding and denormalisation), so the same
components, prompt, seed and scheduler give the same frames; ``tests/test_generation.py`` checks it.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from .. import models as _models
from .._compat import free_cuda_cache, resolve_device, torch_dtype, transformers_dtype_kwarg
from ..errors import GPUOutOfMemoryError, ModelLoadError
from ..models import ModelKey
from ..progress import CancelToken, ProgressCallback, StepReporter
from .base import GeneratedFrames, GenerationSettings

DEFAULT_T2V_MODEL = "ali-vilab/text-to-video-ms-1.7b"
ROLE = "text-to-video"


@dataclass
class TextToVideoComponents:
    """Everything one loaded model consists of; shared through the registry by every generator."""

    tokenizer: Any
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler_config: Dict[str, Any]
    variant: Optional[str]
    # With CPU offload: the hook of the last model in the chain (the VAE), to send it back after decoding.
    offload_hook: Any = None
    notes: List[str] = field(default_factory=list)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


def build_scheduler(name: str, config: Dict[str, Any]) -> Any:
    """A fresh scheduler of kind ``name`` ("dpm++" or "ddim") from the model's own scheduler config.

    Fresh for every run: schedulers keep per-run state (step index, previous model outputs), so a
    shared instance would leak one run into the next.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    raise ValueError(f"Unknown scheduler {name!r}: choose 'dpm++' or 'ddim'.")


def _looks_like_local_path(model_id: str) -> bool:
    return os.path.isabs(model_id) or model_id.startswith((".", "~")) or os.path.isdir(model_id)


def _load_error(model_id: str, revision: Optional[str], reason: str) -> ModelLoadError:
    rev = f" (revision {revision})" if revision else ""
    hf_home = os.environ.get("HF_HOME") or os.path.join("~", ".cache", "huggingface")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        reason += " (HF_HUB_OFFLINE is set, so nothing was downloaded: only the cache and local folders count.)"
    return ModelLoadError(
        f"Could not load the text-to-video model {model_id!r}{rev}: {reason}\n"
        "What to do: check the network connection (the first load downloads about 3.5 GB); or, if the "
        f"model was downloaded before, point HF_HOME at that cache (now {hf_home}) and set "
        "HF_HUB_OFFLINE=1 to load without the network; or pass a local folder that holds unet/, vae/, "
        "text_encoder/, tokenizer/ and scheduler/."
    )


def _load_components(
    model_id: str, revision: Optional[str], device: str, dtype: str, variant: Optional[str], cpu_offload: bool,
    variant_was_auto: bool,
) -> TextToVideoComponents:
    """Load every component of ``model_id``. Only ever called through ``REGISTRY.get``."""
    import torch

    if _looks_like_local_path(model_id) and not os.path.isdir(os.path.expanduser(model_id)):
        raise _load_error(model_id, revision, "there is no such folder.")
    model_id_path = os.path.expanduser(model_id) if _looks_like_local_path(model_id) else model_id
    try:
        from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as err:  # pragma: no cover - both are hard dependencies
        raise _load_error(model_id, revision, f"a package is missing ({err}).") from err

    tdtype = torch_dtype(dtype)
    notes: List[str] = []

    def weights(loader, subfolder: str, dtype_kw: str):
        # Never trust_remote_code: these are stock diffusers/transformers classes.
        kwargs = {"subfolder": subfolder, "revision": revision, dtype_kw: tdtype}
        try:
            return loader(model_id_path, variant=variant, **kwargs)
        except Exception as first:
            if variant is None or not variant_was_auto:
                raise
            # A local folder (or a fork) without fp16 files: the fp32 files, cast on load, are just as good.
            notes.append(f"{subfolder}: no {variant} weights found ({type(first).__name__}); loaded the default files.")
            return loader(model_id_path, variant=None, **kwargs)

    try:
        # The scheduler config first: it is tiny and fails clearly when the model is not there at all.
        scheduler_config = dict(DDIMScheduler.load_config(model_id_path, subfolder="scheduler", revision=revision))
        text_encoder = weights(CLIPTextModel.from_pretrained, "text_encoder", transformers_dtype_kwarg())
        unet = weights(UNet3DConditionModel.from_pretrained, "unet", "torch_dtype")
        vae = weights(AutoencoderKL.from_pretrained, "vae", "torch_dtype")
        tokenizer = CLIPTokenizer.from_pretrained(model_id_path, subfolder="tokenizer", revision=revision)
        # transformers can build a 3-token default tokenizer when the files are missing instead of failing;
        # a tokenizer larger than the encoder's table would index past it on the first rare word.
        if len(tokenizer) <= 3 or len(tokenizer) > text_encoder.config.vocab_size:
            raise OSError(
                f"the tokenizer has {len(tokenizer)} tokens but the text encoder expects "
                f"{text_encoder.config.vocab_size}: tokenizer/vocab.json or merges.txt is missing or wrong."
            )
    except torch.cuda.OutOfMemoryError:
        raise  # loading happens on the CPU; an OOM here is not a missing-model problem
    except Exception as err:
        raise _load_error(model_id, revision, f"{type(err).__name__}: {err}") from err

    models = (text_encoder, unet, vae)
    for model in models:
        # eval() only: inference_mode already skips autograd, and requires_grad_(False) would switch
        # some CPU convolutions to another kernel, losing bit-for-bit parity with diffusers' pipeline.
        model.eval()
    offload_hook = None
    if cpu_offload:
        # Like diffusers' enable_model_cpu_offload: each model moves to the GPU when called and the
        # previous one goes back to the CPU, so only one of them is on the GPU at a time.
        from accelerate import cpu_offload_with_hook

        for model in models:
            _, offload_hook = cpu_offload_with_hook(model, execution_device=device, prev_module_hook=offload_hook)
    else:
        try:
            for model in models:
                model.to(device)
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True
        else:
            out_of_memory = False
        if out_of_memory:  # outside the except block, so its traceback no longer pins the weights
            del models, text_encoder, unet, vae
            free_cuda_cache()
            raise GPUOutOfMemoryError(
                f"The text-to-video model {model_id!r} does not fit in the GPU's free memory in {dtype}. "
                "Turn on CPU offload (cpu_offload=True), free the GPU (unload other models, restart other "
                "notebooks), or use a GPU with more memory."
            )
    return TextToVideoComponents(
        tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, vae=vae, scheduler_config=scheduler_config,
        variant=variant, offload_hook=offload_hook, notes=notes,
    )


class DiffusersTextToVideo:
    """Text-to-video with the diffusers components of ``ali-vilab/text-to-video-ms-1.7b`` (or a folder like it).

    ``device``/``dtype`` "auto": CUDA in fp16 when there is a GPU, else CPU in fp32. ``variant`` "auto":
    the fp16 files on CUDA (a quarter of the download), the default files on the CPU.
    ``vae_slice_frames``: frames decoded per VAE call (bounds decoding memory; 0 or None: all at once).
    ``cpu_offload``: keep only the running model on the GPU (CUDA only; slower, much less memory).
    """

    backend = "diffusers"

    def __init__(
        self,
        model_id: str = DEFAULT_T2V_MODEL,
        *,
        revision: Optional[str] = None,
        device: str = "auto",
        dtype: str = "auto",
        variant: Optional[str] = "auto",
        vae_slice_frames: Optional[int] = 8,
        cpu_offload: bool = False,
    ) -> None:
        self.model_id = str(model_id)
        self.revision = revision
        self.device, self.dtype = resolve_device(device, dtype)
        on_cuda = self.device.startswith("cuda")
        self._variant_was_auto = variant == "auto"
        if variant == "auto":
            variant = "fp16" if on_cuda and self.dtype == "float16" else None
        self.variant = variant
        self.vae_slice_frames = int(vae_slice_frames) if vae_slice_frames else 0
        self.cpu_offload_requested = bool(cpu_offload)
        self.cpu_offload = bool(cpu_offload) and on_cuda  # offloading to the CPU from the CPU means nothing

    # -- loading -------------------------------------------------------------------------------

    @property
    def key(self) -> ModelKey:
        # Offloaded components carry hooks, so they must never be shared with a non-offloaded generator.
        device = f"{self.device}+cpu-offload" if self.cpu_offload else self.device
        return ModelKey(ROLE, self.model_id, self.revision, device, self.dtype)

    def load(self) -> None:
        """Load every component, or take them from ``models.REGISTRY`` when already resident."""
        self.components  # noqa: B018 - the property does the work

    @property
    def components(self) -> TextToVideoComponents:
        # Asked of the registry every time, never cached here: after ``models.unload()`` this object
        # must not keep gigabytes of weights alive behind the registry's back.
        return _models.REGISTRY.get(
            self.key,
            lambda: _load_components(
                self.model_id, self.revision, self.device, self.dtype, self.variant, self.cpu_offload,
                self._variant_was_auto,
            ),
        )

    def describe(self) -> Dict[str, Any]:
        """Model id, revision, device, dtype and memory options, for run.json."""
        return {
            "backend": self.backend,
            "model_id": self.model_id,
            "revision": self.revision,
            "device": self.device,
            "dtype": self.dtype,
            "variant": self.variant,
            "cpu_offload": self.cpu_offload,
            "vae_slice_frames": self.vae_slice_frames,
        }

    # -- generation ------------------------------------------------------------------------------

    def generate(
        self,
        settings: GenerationSettings,
        *,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> GeneratedFrames:
        """Generate uint8 frames (T, H, W, 3) for ``settings``; progress per step; cancellable between steps."""
        return self._generate(settings, on_progress=on_progress, cancel=cancel, as_float=False)

    def _generate_float(
        self,
        settings: GenerationSettings,
        *,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> GeneratedFrames:
        """Like ``generate`` but ``frames`` are float32 in [0, 1], before rounding: for exact parity checks."""
        return self._generate(settings, on_progress=on_progress, cancel=cancel, as_float=True)

    def _generate(
        self,
        settings: GenerationSettings,
        *,
        on_progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken],
        as_float: bool,
    ) -> GeneratedFrames:
        import torch

        # checked() is idempotent: it fixes sizes and draws a seed when the caller has not done so.
        settings, notices = settings.checked()
        notes = list(notices)
        if self.cpu_offload_requested and not self.cpu_offload:
            notes.append("CPU offload only applies on a CUDA GPU; it was ignored here.")
        if cancel is not None:
            cancel.raise_if_cancelled()
        timings: Dict[str, float] = {}
        started = time.perf_counter()
        components = self.components
        timings["load"] = time.perf_counter() - started
        notes.extend(components.notes)

        out_of_memory = False
        try:
            frames = self._run(components, settings, notes, timings, on_progress, cancel, as_float)
        except torch.cuda.OutOfMemoryError:
            # Leave the except block first: its traceback still holds the frames' big tensors.
            out_of_memory = True
        finally:
            if components.offload_hook is not None:
                components.offload_hook.offload()
        if out_of_memory:
            free_cuda_cache()
            raise GPUOutOfMemoryError(self._oom_message(settings))
        return GeneratedFrames(frames=frames, settings=settings, notes=notes, timings=timings, model=self.describe())

    def _oom_message(self, settings: GenerationSettings) -> str:
        tips = [
            f"fewer frames (now {settings.num_frames})",
            f"a smaller size (now {settings.width}x{settings.height})",
            f"fewer steps (now {settings.num_steps})",
        ]
        if not self.cpu_offload:
            tips.append("turn on CPU offload (cpu_offload=True)")
        if not self.vae_slice_frames or self.vae_slice_frames > 1:
            tips.append(f"decode fewer frames at a time (vae_slice_frames, now {self.vae_slice_frames or 'all'})")
        return (
            "The GPU ran out of memory while generating. The memory was freed and the models are still "
            "loaded: try again with " + ", ".join(tips) + "."
        )

    def _run(
        self,
        c: TextToVideoComponents,
        settings: GenerationSettings,
        notes: List[str],
        timings: Dict[str, float],
        on_progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken],
        as_float: bool,
    ) -> np.ndarray:
        import torch

        device = torch.device(self.device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        do_guidance = settings.guidance_scale > 1.0  # same rule as the reference pipeline

        started = time.perf_counter()
        with torch.inference_mode():
            prompt_embeds = self._encode_text(c, settings.prompt, "caption", notes)
            if do_guidance:
                negative_embeds = self._encode_text(c, settings.negative_prompt or "", "negative prompt", notes)
                # One UNet call on a batch of two: [unconditional, conditional], in the pipeline's order.
                prompt_embeds = torch.cat([negative_embeds, prompt_embeds])
        timings["encode_prompt"] = time.perf_counter() - started

        started = time.perf_counter()
        scheduler = build_scheduler(settings.scheduler, c.scheduler_config)
        scheduler.set_timesteps(settings.num_steps, device=device)
        timesteps = scheduler.timesteps
        # A CPU generator makes the starting noise the same on every device, as the reference pipeline does.
        generator = torch.Generator(device="cpu").manual_seed(int(settings.seed))
        shape = (
            1,
            c.unet.config.in_channels,
            settings.num_frames,
            settings.height // c.vae_scale_factor,
            settings.width // c.vae_scale_factor,
        )
        latents = torch.randn(shape, generator=generator, device="cpu", dtype=prompt_embeds.dtype).to(device)
        latents = latents * scheduler.init_noise_sigma
        step_kwargs = _extra_step_kwargs(scheduler, generator)
        # Per-sample thresholding is the only scheduler feature that depends on the batch layout; only
        # then reshape to (frames, C, H, W) like the pipeline. Otherwise the step is elementwise, and
        # skipping two copies of the latents per step is free.
        frame_batches = bool(getattr(scheduler.config, "thresholding", False))

        reporter = StepReporter("denoise", total=len(timesteps), on_progress=on_progress, cancel=cancel)
        reporter.check()
        with torch.inference_mode():
            for t in timesteps:
                model_input = torch.cat([latents] * 2) if do_guidance else latents
                model_input = scheduler.scale_model_input(model_input, t)
                noise_pred = c.unet(model_input, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]
                if do_guidance:
                    noise_uncond, noise_text = noise_pred.chunk(2)
                    noise_pred = noise_uncond + settings.guidance_scale * (noise_text - noise_uncond)
                if frame_batches:
                    b, ch, f, h, w = latents.shape
                    flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, ch, h, w)
                    noise_flat = noise_pred.permute(0, 2, 1, 3, 4).reshape(b * f, ch, h, w)
                    flat = scheduler.step(noise_flat, t, flat, **step_kwargs).prev_sample
                    latents = flat[None, :].reshape(b, f, ch, h, w).permute(0, 2, 1, 3, 4)
                else:
                    latents = scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
                # Wait for the GPU so that progress times and cancel points match real work.
                sync()
                reporter.step()
        del prompt_embeds, noise_pred, model_input
        timings["denoise"] = time.perf_counter() - started

        started = time.perf_counter()
        frames = self._decode(c, latents, on_progress, cancel, as_float)
        timings["decode"] = time.perf_counter() - started
        return frames

    def _encode_text(self, c: TextToVideoComponents, text: str, what: str, notes: List[str]):
        """CLIP hidden states of ``text`` padded to the encoder's length; a note when the end was cut."""
        tokenizer, encoder = c.tokenizer, c.text_encoder
        max_length = min(int(tokenizer.model_max_length), int(encoder.config.max_position_embeddings))
        inputs = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
        full = tokenizer(text, padding="longest", return_tensors="pt", verbose=False).input_ids
        if full.shape[-1] > max_length:
            # The end-of-text token stays; what fell off is everything between it and the cut.
            cut = tokenizer.batch_decode(full[:, max_length - 1 : -1])[0].strip()
            label = "The caption" if what == "caption" else "The negative prompt"
            notes.append(
                f"{label} is longer than the text encoder's {max_length} tokens; the end was cut: \u201c{cut}\u201d."
            )
        attention_mask = None
        if getattr(encoder.config, "use_attention_mask", False):
            attention_mask = inputs.attention_mask.to(self.device)
        hidden = encoder(inputs.input_ids.to(self.device), attention_mask=attention_mask)[0]
        return hidden.to(dtype=encoder.dtype, device=self.device)

    def _decode(
        self,
        c: TextToVideoComponents,
        latents,
        on_progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken],
        as_float: bool,
    ) -> np.ndarray:
        """VAE-decode ``latents`` a few frames at a time into (T, H, W, 3) frames on the CPU."""
        import torch

        _, _, num_frames, _, _ = latents.shape
        per_call = self.vae_slice_frames or num_frames
        reporter = StepReporter("decode", total=math.ceil(num_frames / per_call), on_progress=on_progress,
                                cancel=cancel)
        reporter.check()
        frames: Optional[np.ndarray] = None
        with torch.inference_mode():
            latents = 1 / c.vae.config.scaling_factor * latents
            for start in range(0, num_frames, per_call):
                chunk = latents[:, :, start : start + per_call]
                b, ch, n, h, w = chunk.shape
                chunk = chunk.permute(0, 2, 1, 3, 4).reshape(b * n, ch, h, w)
                image = c.vae.decode(chunk).sample.float()
                # VaeImageProcessor's denormalisation, then channels last, as the pipeline's "np" output.
                image = (image * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
                if not as_float:
                    # Rounded like diffusers' numpy_to_pil, but on the device: 4x less to copy back.
                    image = (image * 255).round().to(torch.uint8)
                part = image.cpu().numpy()
                if frames is None:
                    frames = np.empty((num_frames,) + part.shape[1:], dtype=part.dtype)
                frames[start : start + n] = part
                reporter.step()
        assert frames is not None
        return frames


def _extra_step_kwargs(scheduler, generator) -> Dict[str, Any]:
    # As the pipeline does: eta 0 for DDIM (deterministic), and our generator for schedulers that add noise.
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs: Dict[str, Any] = {}
    if "eta" in params:
        kwargs["eta"] = 0.0
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


__all__ = ["DEFAULT_T2V_MODEL", "DiffusersTextToVideo", "TextToVideoComponents", "build_scheduler"]
