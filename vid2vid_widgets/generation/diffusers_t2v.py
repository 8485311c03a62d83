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
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .._compat import torch_dtype, transformers_dtype_kwarg
from ..errors import ModelLoadError
from .. import downloads
from ..models import is_local_folder
from .base import GenerationSettings, GeneratorBase, Sampler, truncation_note
from .preview import SD15_SCALING_FACTOR, x0_from_noise

DEFAULT_T2V_MODEL = "ali-vilab/text-to-video-ms-1.7b"
ROLE = "text-to-video"
COMPONENT_FOLDERS = ("scheduler", "text_encoder", "tokenizer", "unet", "vae")  # what _load_components reads


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
    """A fresh scheduler of kind ``name`` ("dpm++", "ddim" or "euler") from the model's own scheduler config.

    Fresh for every run: schedulers keep per-run state (step index, previous model outputs), so a
    shared instance would leak one run into the next. "euler" is what distilled few-step models
    (AnimateDiff-Lightning) prescribe.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    raise ValueError(f"Unknown scheduler {name!r}: choose 'dpm++', 'ddim' or 'euler'.")


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


# weights(loader, subfolder, dtype keyword) -> a model: loads one component with the variant fallback.
WeightsLoader = Callable[[Callable[..., Any], str, str], Any]


def _load_components(
    model_id: str, revision: Optional[str], device: str, dtype: str, variant: Optional[str], cpu_offload: bool,
    variant_was_auto: bool, load_unet: Optional[Callable[[WeightsLoader], Any]] = None,
) -> TextToVideoComponents:
    """Load every component of ``model_id``. Only ever called through ``REGISTRY.get``.

    ``load_unet(weights)`` builds the denoiser for families whose UNet is not a stored
    ``UNet3DConditionModel`` (AnimateDiff: a 2D UNet plus a motion adapter); one component at a
    time, so loading never holds two copies of the weights.
    """
    import torch

    if is_local_folder(model_id) and not os.path.isdir(os.path.expanduser(model_id)):
        raise _load_error(model_id, revision, "there is no such folder.")
    try:
        # Fetched first: only these folders and the chosen variant's weights (fp16 on CUDA: a quarter of
        # the fp32 download), with visible progress and Cancel; then every component loads from disk.
        model_id_path = downloads.fetch(model_id, revision=revision, folders=COMPONENT_FOLDERS, variant=variant)
    except downloads.DownloadError as err:
        raise _load_error(model_id, revision, str(err)) from err
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
        if load_unet is None:
            unet = weights(UNet3DConditionModel.from_pretrained, "unet", "torch_dtype")
        else:
            unet = load_unet(weights)
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
        # A model that does not fit is the skeleton's out-of-memory guard's to report and free.
        for model in models:
            model.to(device)
    return TextToVideoComponents(
        tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, vae=vae, scheduler_config=scheduler_config,
        variant=variant, offload_hook=offload_hook, notes=notes,
    )


class DiffusersTextToVideo(GeneratorBase):
    """Text-to-video with the diffusers components of ``ali-vilab/text-to-video-ms-1.7b`` (or a folder like it).

    ``device``/``dtype`` "auto": CUDA in fp16 when there is a GPU, else CPU in fp32. ``variant`` "auto":
    the fp16 files on CUDA (a quarter of the download), the default files on the CPU.
    ``vae_slice_frames``: frames decoded per VAE call (bounds decoding memory; 0 or None: all at once).
    ``cpu_offload``: keep only the running model on the GPU (CUDA only; slower, much less memory).
    """

    backend = "diffusers"
    role = ROLE

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
        scheduler_config: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(model_id, revision=revision, device=device, dtype=dtype, vae_slice_frames=vae_slice_frames)
        # Overrides of the model's own scheduler config (a preset's recipe, e.g. linear betas).
        self.scheduler_overrides = dict(scheduler_config or {})
        on_cuda = self.device.startswith("cuda")
        self._variant_was_auto = variant == "auto"
        if variant == "auto":
            variant = "fp16" if on_cuda and self.dtype == "float16" else None
        self.variant = variant
        self.cpu_offload_requested = bool(cpu_offload)
        self.cpu_offload = bool(cpu_offload) and on_cuda  # offloading to the CPU from the CPU means nothing

    # -- loading -------------------------------------------------------------------------------
    def _key_device(self) -> str:
        # Offloaded components carry hooks, so they must never be shared with a non-offloaded generator.
        return f"{self.device}+cpu-offload" if self.cpu_offload else self.device

    def _load(self) -> TextToVideoComponents:
        return _load_components(self.model_id, self.revision, self.device, self.dtype, self.variant,
                                self.cpu_offload, self._variant_was_auto)

    @property
    def components(self) -> TextToVideoComponents:
        """The resident components (loaded on first use)."""
        return self._components()

    def _load_tips(self) -> List[str]:
        return [] if self.cpu_offload else ["turn on CPU offload (cpu_offload=True)"]

    def _describe_extra(self) -> Dict[str, Any]:
        extra = {"variant": self.variant, "cpu_offload": self.cpu_offload, "vae_slice_frames": self.vae_slice_frames}
        if self.scheduler_overrides:
            extra["scheduler_config"] = dict(self.scheduler_overrides)
        return extra

    # -- the backend's part of a run ----------------------------------------------------------------
    def _adapt(self, settings: GenerationSettings, c: TextToVideoComponents) -> Tuple[GenerationSettings, List[str]]:
        notes = list(c.notes)
        if self.cpu_offload_requested and not self.cpu_offload:
            notes.insert(0, "CPU offload only applies on a CUDA GPU; it was ignored here.")
        return settings, notes

    def _after_run(self, c: TextToVideoComponents) -> None:
        if c.offload_hook is not None:
            c.offload_hook.offload()

    def _memory_tips(self) -> List[str]:
        return self._load_tips() + super()._memory_tips()

    def _encode_prompt(self, c: TextToVideoComponents, settings: GenerationSettings, notes: List[str]) -> Any:
        import torch

        prompt_embeds = self._encode_text(c, settings.prompt, "caption", notes)
        if settings.guidance_scale > 1.0:  # same rule as the reference pipeline
            negative_embeds = self._encode_text(c, settings.negative_prompt or "", "negative prompt", notes)
            # One UNet call on a batch of two: [unconditional, conditional], in the pipeline's order.
            prompt_embeds = torch.cat([negative_embeds, prompt_embeds])
        return prompt_embeds

    def _latent_shape(self, c: TextToVideoComponents, settings: GenerationSettings) -> Tuple[int, ...]:
        return (1, c.unet.config.in_channels, settings.num_frames,
                settings.height // c.vae_scale_factor, settings.width // c.vae_scale_factor)

    def _sampler(self, c: TextToVideoComponents, settings: GenerationSettings, cond: Any, generator: Any) -> Sampler:
        import torch

        do_guidance = settings.guidance_scale > 1.0
        scheduler = build_scheduler(settings.scheduler, {**c.scheduler_config, **self.scheduler_overrides})
        scheduler.set_timesteps(settings.num_steps, device=torch.device(self.device))
        step_kwargs = _extra_step_kwargs(scheduler, generator)
        # Per-sample thresholding is the only scheduler feature that depends on the batch layout; only
        # then reshape to (frames, C, H, W) like the pipeline. Otherwise the step is elementwise, and
        # skipping two copies of the latents per step is free.
        frame_batches = bool(getattr(scheduler.config, "thresholding", False))
        last: Dict[str, Any] = {}  # the last step's input and guided prediction, for estimate_x0

        def step(latents: Any, t: Any) -> Any:
            model_input = torch.cat([latents] * 2) if do_guidance else latents
            model_input = scheduler.scale_model_input(model_input, t)
            noise_pred = c.unet(model_input, t, encoder_hidden_states=cond, return_dict=False)[0]
            if do_guidance:
                noise_uncond, noise_text = noise_pred.chunk(2)
                noise_pred = noise_uncond + settings.guidance_scale * (noise_text - noise_uncond)
            last.update(sample=latents, model_output=noise_pred, t=t)
            if not frame_batches:
                return scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
            b, ch, f, h, w = latents.shape
            flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, ch, h, w)
            noise_flat = noise_pred.permute(0, 2, 1, 3, 4).reshape(b * f, ch, h, w)
            flat = scheduler.step(noise_flat, t, flat, **step_kwargs).prev_sample
            return flat[None, :].reshape(b, f, ch, h, w).permute(0, 2, 1, 3, 4)

        def begin(skipped: int) -> Any:
            # As diffusers' get_timesteps: multistep schedulers count from the begin index.
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(skipped * scheduler.order)
            return scheduler.timesteps[skipped * scheduler.order :]

        def add_noise(clean: Any, noise: Any, t: Any) -> Any:
            return scheduler.add_noise(clean, noise, t.reshape(1))

        def estimate_x0() -> Any:
            # The same x0 as DDIM's pred_original_sample; DPM-Solver++ computes it inside its step too.
            alpha_prod = scheduler.alphas_cumprod[int(last["t"])]
            return x0_from_noise(last["sample"], last["model_output"], alpha_prod,
                                 scheduler.config.prediction_type)

        return Sampler(timesteps=scheduler.timesteps, step=step, noise_dtype=cond.dtype,
                       init_noise_sigma=scheduler.init_noise_sigma, add_noise=add_noise, begin=begin,
                       estimate_x0=estimate_x0)

    def _encode_text(self, c: TextToVideoComponents, text: str, what: str, notes: List[str]):
        """CLIP hidden states of ``text`` padded to the encoder's length; a note when the end was cut."""
        tokenizer, encoder = c.tokenizer, c.text_encoder
        max_length = min(int(tokenizer.model_max_length), int(encoder.config.max_position_embeddings))
        inputs = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
        full = tokenizer(text, padding="longest", return_tensors="pt", verbose=False).input_ids
        if full.shape[-1] > max_length:
            # The end-of-text token stays; what fell off is everything between it and the cut.
            cut = tokenizer.batch_decode(full[:, max_length - 1 : -1])[0].strip()
            notes.append(truncation_note(what, max_length, cut))
        attention_mask = None
        if getattr(encoder.config, "use_attention_mask", False):
            attention_mask = inputs.attention_mask.to(self.device)
        hidden = encoder(inputs.input_ids.to(self.device), attention_mask=attention_mask)[0]
        return hidden.to(dtype=encoder.dtype, device=self.device)

    def _sd_family_vae(self, c: TextToVideoComponents) -> bool:
        # The ModelScope 1.7B model (and zeroscope) ship Stable Diffusion 1.x's VAE unchanged.
        config = c.vae.config
        return (int(config.latent_channels) == 4 and abs(float(config.scaling_factor) - SD15_SCALING_FACTOR) < 1e-6
                and tuple(config.block_out_channels) == (128, 256, 512, 512))

    def _encode_slice(self, c: TextToVideoComponents, pixels: Any) -> Tuple[Any, Any]:
        posterior = c.vae.encode(pixels.to(dtype=c.vae.dtype)).latent_dist
        return posterior.mean, posterior.std

    def _latent_scale(self, c: TextToVideoComponents) -> float:
        return c.vae.config.scaling_factor

    def _decode_slice(self, c: TextToVideoComponents, latents: Any) -> Any:
        b, ch, n, h, w = latents.shape
        latents = (1 / c.vae.config.scaling_factor * latents).permute(0, 2, 1, 3, 4).reshape(b * n, ch, h, w)
        return c.vae.decode(latents).sample


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
