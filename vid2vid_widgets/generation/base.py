"""What every text-to-video backend shares: the settings, the result, the ``Generator`` protocol and
the one skeleton (``GeneratorBase``) that every backend fills in with its own load, denoise and decode.

A backend turns ``GenerationSettings`` into uint8 frames. It never writes files and never touches
widgets: encoding is ``video.encode_mp4``'s job, saving is ``runs.RunStore``'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from ..errors import InvalidSettingsError
from ..models import ModelKey
from ..video.fit import fit_frames
from ..oom import out_of_memory_advice, out_of_memory_guard
from ..progress import CancelToken, ProgressCallback, StepReporter

SCHEDULERS = ("dpm++", "ddim", "euler")  # euler: what few-step distilled models prescribe
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that decides what a generated video looks like. Stored in every run.json."""

    prompt: str = ""
    negative_prompt: str = ""
    seed: Optional[int] = None  # None: pick one at random and record it
    num_frames: int = 16
    num_steps: int = 25
    guidance_scale: float = 9.0
    height: int = 256
    width: int = 256
    fps: int = 8
    scheduler: str = "dpm++"
    # Video-to-video: how far the new video may move away from the input (1.0: words only, the input
    # is not followed; 0.3: close to the input). Below 1 the run needs an input video.
    strength: float = 1.0
    # The part of the input that is followed: from ``start`` seconds, ``window`` seconds long
    # (None: num_frames / fps, so the motion keeps its speed).
    start: float = 0.0
    window: Optional[float] = None

    def replace(self, **changes: Any) -> "GenerationSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "GenerationSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def fitted_sizes(self, unit: int, why: str = "") -> Tuple[Dict[str, int], List[str]]:
        """Height and width rounded to a multiple of ``unit`` (halves up), with a note for each change.

        The one rule for sizes: ``checked()`` uses it with the VAE's 8, a backend with a coarser
        size unit (the ModelScope UNet) uses it again with its own, saying why in ``why``.
        """
        sizes: Dict[str, int] = {}
        notes: List[str] = []
        for name in ("height", "width"):
            value = int(getattr(self, name))
            fitted = max(unit, int(value / unit + 0.5) * unit)  # half up: 100 -> 104, not banker's 96
            if fitted != value:
                notes.append(f"{name} {value} is not a multiple of {unit}{why}; using {fitted}.")
            sizes[name] = fitted
        return sizes, notes

    @property
    def follows_input(self) -> bool:
        """True when the run starts from an input video (strength below 1)."""
        return float(self.strength) < 1.0

    @property
    def window_seconds(self) -> float:
        """How many seconds of the input are followed: ``window``, or as long as the output lasts."""
        return float(self.window) if self.window is not None else self.num_frames / self.fps

    def skipped_steps(self) -> int:
        """Denoising steps skipped when following an input: ``S - int(S * strength)`` of S."""
        return self.num_steps - min(int(self.num_steps * float(self.strength)), self.num_steps)

    def checked(self) -> Tuple["GenerationSettings", List[str]]:
        """Return settings that a backend can run, plus notices of what was corrected.

        Refuses (``InvalidSettingsError``) what has no sensible correction: an empty prompt, zero
        frames or steps, a negative seed. Corrects what has one: sizes are rounded to a multiple of 8
        (the VAE's scale factor), and a missing seed is drawn at random so the run can be repeated.
        """
        prompt = (self.prompt or "").strip()
        if not prompt:
            raise InvalidSettingsError(
                "The caption is empty: type what the new video should show, then press Generate."
            )
        for name, value, low in (("frames", self.num_frames, 1), ("steps", self.num_steps, 1), ("fps", self.fps, 1)):
            if int(value) != value or value < low:
                raise InvalidSettingsError(f"{name} must be a whole number of at least {low} (got {value!r}).")
        if self.guidance_scale < 0:
            raise InvalidSettingsError(
                f"guidance must be 0 or more (got {self.guidance_scale}); 9 is the model's usual value."
            )
        if not 0.0 <= float(self.strength) <= 1.0:
            raise InvalidSettingsError(
                f"strength must be from 0 to 1 (got {self.strength}): 1 makes the video from the words alone, "
                "lower values follow the input video more closely (0.6 is a good start)."
            )
        if float(self.start) < 0 or (self.window is not None and float(self.window) <= 0):
            raise InvalidSettingsError(
                f"The input window must start at 0 s or later and last more than 0 s (got start {self.start}, "
                f"window {self.window})."
            )
        if self.scheduler not in SCHEDULERS:
            raise InvalidSettingsError(
                f"Unknown scheduler {self.scheduler!r}: choose one of {', '.join(SCHEDULERS)}."
            )
        if self.seed is not None and (int(self.seed) != self.seed or not 0 <= self.seed <= MAX_SEED):
            raise InvalidSettingsError(
                f"The seed must be a whole number from 0 to {MAX_SEED} (got {self.seed!r}); "
                "leave it empty for a random one."
            )
        sizes, notices = self.fitted_sizes(8)
        seed = self.seed if self.seed is not None else secrets.randbelow(MAX_SEED + 1)
        fixed = self.replace(prompt=prompt, seed=int(seed), num_frames=int(self.num_frames),
                             num_steps=int(self.num_steps), fps=int(self.fps), strength=float(self.strength),
                             start=float(self.start), **sizes)
        return fixed, notices


@dataclass
class GeneratedFrames:
    """A backend's result: frames plus what produced them."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    settings: GenerationSettings  # with the seed actually used
    notes: List[str] = field(default_factory=list)  # settings corrected or not honoured, prompt truncated...
    timings: Dict[str, float] = field(default_factory=dict)  # seconds: "load", "encode_prompt", "denoise", "decode"
    model: Dict[str, Any] = field(default_factory=dict)  # backend, model_id, revision, device, dtype


@runtime_checkable
class Generator(Protocol):
    """A text-to-video backend. Loading is lazy and goes through ``models.REGISTRY``."""

    backend: str
    model_id: str

    def load(self) -> None:
        """Load (or fetch from the registry) every component; cheap when already resident."""

    def describe(self) -> Dict[str, Any]:
        """Model ids, revisions, device and dtype, for run.json."""

    def generate(
        self,
        settings: GenerationSettings,
        *,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> GeneratedFrames:
        """Run ``settings`` (already ``checked()``) and return uint8 frames."""


def size_for_aspect(aspect: float, pixels: int, unit: int = 8) -> Tuple[int, int]:
    """(width, height) with about ``pixels`` pixels and the aspect ratio ``aspect`` (width / height),
    each side a multiple of ``unit`` and at least one unit: 16:9 at 256x256's pixels -> (344, 192)."""
    width = math.sqrt(pixels * aspect)
    height = width / aspect
    return max(unit, int(width / unit + 0.5) * unit), max(unit, int(height / unit + 0.5) * unit)


def generation_out_of_memory_advice(settings: GenerationSettings, also: Sequence[str] = ()) -> str:
    """What to lower when generating ``settings`` ran out of GPU memory (``also``: backend-specific ways)."""
    return out_of_memory_advice(
        "generating", ["the frames", "the size", "the steps"],
        f"now {settings.num_frames} frames of {settings.width}x{settings.height}, {settings.num_steps} steps", also,
    )


def truncation_note(what: str, max_tokens: int, cut: str) -> str:
    """The note when a prompt is longer than the text encoder reads; ``cut`` is what fell off."""
    label = "The caption" if what == "caption" else f"The {what}"
    return f"{label} is longer than the text encoder's {max_tokens} tokens; the end was cut: \u201c{cut}\u201d."


@dataclass
class Sampler:
    """One run's denoising schedule, as a backend sets it up: the timesteps and one step of the loop.

    ``step(latents, t)`` runs the model (with guidance) and the scheduler update for timestep ``t``
    and returns the next latents. ``noise_dtype`` and ``init_noise_sigma`` shape the starting noise.
    """

    timesteps: Sequence[Any]
    step: Callable[[Any, Any], Any]
    noise_dtype: Any = None  # None: float32
    init_noise_sigma: float = 1.0
    # Video-to-video: ``add_noise(x0, noise, t)`` noises clean latents to timestep t with the
    # scheduler's own formula; ``begin(i)`` starts the schedule at its i-th step (multistep
    # schedulers keep an index) and returns the timesteps left.
    add_noise: Optional[Callable[[Any, Any, Any], Any]] = None
    begin: Optional[Callable[[int], Sequence[Any]]] = None


class GeneratorBase:
    """The one generator skeleton: every backend is this class plus its own load, denoise and decode.

    The skeleton owns what all backends share and must not drift apart: checking the settings,
    fetching resident components through ``models.REGISTRY`` (timed as "load", always), the
    out-of-memory guard, seeded starting noise from a CPU generator (the same numbers on every
    device), per-step progress and cancel, VAE decoding in slices of ``vae_slice_frames`` frames,
    and the ``GeneratedFrames`` record. A backend supplies:

    * ``role`` and ``backend`` (class attributes), ``_load()`` (called once per process by the registry);
    * ``_encode_prompt(c, settings, notes)`` -> conditioning, with a ``truncation_note`` when cut;
    * ``_latent_shape(c, settings)`` and ``_sampler(c, settings, cond, generator)``;
    * ``_decode_slice(c, latents)``: latents (1, C, n, h, w) -> images (n, 3, H, W) in [-1, 1];
    * optionally ``_adapt`` (fit settings to the model, with notes), ``_run_context`` (autocast...),
      ``_to_uint8``, ``_after_run``, ``_memory_tips`` and ``_describe_extra``.
    """

    backend: str = ""
    role: str = ""

    def __init__(
        self, model_id: str, *, revision: Optional[str] = None, device: str = "auto", dtype: str = "auto",
        vae_slice_frames: Optional[int] = 8,
    ) -> None:
        from .._compat import resolve_device

        self.model_id = str(model_id)
        self.revision = revision
        self.device, self.dtype = resolve_device(device, dtype)
        # Frames per VAE decode call: bounds decoding memory on a 16 GB T4 (0 or None: all at once).
        self.vae_slice_frames = int(vae_slice_frames) if vae_slice_frames else 0

    # -- loading ---------------------------------------------------------------------------------
    @property
    def key(self) -> ModelKey:
        return ModelKey(self.role, self.model_id, self.revision, self._key_device(), self.dtype)

    def _key_device(self) -> str:
        return self.device

    @property
    def size_unit(self) -> int:
        """Output height and width are multiples of this (the VAE's downsampling)."""
        return 8

    def load(self) -> None:
        """Load every component once per process (``models.REGISTRY``); cheap when already resident."""
        self._components()

    def _components(self) -> Any:
        # Asked of the registry every time, never cached here: after ``models.unload()`` a generator
        # must not keep gigabytes of weights alive behind the registry's back.
        from .. import models

        # Loading places the weights on the GPU: a model that does not fit is reported like any
        # other out-of-memory, and the guard frees what the failed load had placed.
        with out_of_memory_guard(self._load_advice()):
            return models.REGISTRY.get(self.key, self._load)

    def _load(self) -> Any:
        raise NotImplementedError

    def _load_advice(self) -> str:
        ways = ["free the GPU (vid2vid_widgets.unload() drops resident models; close other notebooks)",
                *self._load_tips(), "use a GPU with more memory"]
        return (f"The {self.backend} model {self.model_id!r} does not fit in the GPU's free memory in {self.dtype}; "
                "the memory was freed. To load it, " + ", or ".join(ways) + ".")

    def _load_tips(self) -> List[str]:
        """Backend-specific ways to load in less GPU memory (e.g. CPU offload)."""
        return []

    def describe(self) -> Dict[str, Any]:
        """Model id, revision, device, dtype and the backend's own options, for run.json."""
        info: Dict[str, Any] = {"backend": self.backend, "model_id": self.model_id, "revision": self.revision,
                                "device": self.device, "dtype": self.dtype}
        info.update(self._describe_extra())
        return info

    def _describe_extra(self) -> Dict[str, Any]:
        return {}

    # -- generation ------------------------------------------------------------------------------
    def generate(
        self,
        settings: GenerationSettings,
        *,
        init_frames: Optional[np.ndarray] = None,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> GeneratedFrames:
        """Generate uint8 frames (T, H, W, 3) for ``settings``; progress per step; cancellable between steps.

        With ``settings.strength`` below 1, ``init_frames`` (num_frames RGB uint8 frames, any size: they
        are centre-cropped and resized to the output size) are the video to follow.
        """
        return self._generate(settings, init_frames, on_progress, cancel, as_float=False)

    def _generate_float(
        self,
        settings: GenerationSettings,
        *,
        init_frames: Optional[np.ndarray] = None,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> GeneratedFrames:
        """Like ``generate`` but ``frames`` are float32 in [0, 1], before rounding: for exact parity checks."""
        return self._generate(settings, init_frames, on_progress, cancel, as_float=True)

    def _generate(
        self, settings: GenerationSettings, init_frames: Optional[np.ndarray], on_progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken], as_float: bool,
    ) -> GeneratedFrames:
        # checked() is idempotent: it fixes sizes and draws a seed when the caller has not done so.
        settings, notes = settings.checked()
        if settings.follows_input and init_frames is None:
            raise InvalidSettingsError(
                f"strength {settings.strength:g} follows an input video, but none was given: pass the video "
                "(source=... / init_frames=...), or set strength to 1 to make the video from the words alone."
            )
        if cancel is not None:
            cancel.raise_if_cancelled()
        timings: Dict[str, float] = {}
        started = time.perf_counter()
        components = self._components()
        timings["load"] = time.perf_counter() - started
        settings, adapt_notes = self._adapt(settings, components)
        notes.extend(adapt_notes)
        if settings.follows_input:
            init_frames = fit_frames(_check_init_frames(init_frames, settings.num_frames), settings.width,
                                     settings.height)
        else:
            init_frames = None  # strength 1: the words alone, whatever was passed
        with out_of_memory_guard(self._out_of_memory_advice(settings)):
            try:
                frames = self._run(components, settings, init_frames, notes, timings, on_progress, cancel, as_float)
            finally:
                self._after_run(components)
        return GeneratedFrames(frames=frames, settings=settings, notes=notes, timings=timings, model=self.describe())

    def _adapt(self, settings: GenerationSettings, components: Any) -> Tuple[GenerationSettings, List[str]]:
        """Fit checked settings to what this model can do; a note for everything changed or ignored."""
        return settings, []

    def _after_run(self, components: Any) -> None:
        """Runs after every run, finished or failed (e.g. send offloaded models back to the CPU)."""

    def _run_context(self) -> ContextManager[Any]:
        """Entered around the whole run (encode, denoise, decode), inside ``torch.inference_mode``."""
        return contextlib.nullcontext()

    def _out_of_memory_advice(self, settings: GenerationSettings) -> str:
        return generation_out_of_memory_advice(settings, self._memory_tips())

    def _memory_tips(self) -> List[str]:
        """Other ways to need less memory with this backend, for the out-of-memory message."""
        if not self.vae_slice_frames or self.vae_slice_frames > 1:
            return [f"decode fewer frames at a time (vae_slice_frames, now {self.vae_slice_frames or 'all'})"]
        return []

    def _run(
        self, c: Any, settings: GenerationSettings, init_frames: Optional[np.ndarray], notes: List[str],
        timings: Dict[str, float], on_progress: Optional[ProgressCallback], cancel: Optional[CancelToken],
        as_float: bool,
    ) -> np.ndarray:
        import torch

        device = torch.device(self.device)
        # Wait for the GPU after each step, so that progress times and cancel points match real work.
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        with torch.inference_mode(), self._run_context():
            started = time.perf_counter()
            cond = self._encode_prompt(c, settings, notes)
            timings["encode_prompt"] = time.perf_counter() - started

            started = time.perf_counter()
            # A CPU generator makes the starting noise the same on every device.
            generator = torch.Generator(device="cpu").manual_seed(int(settings.seed))
            sampler = self._sampler(c, settings, cond, generator)
            noise_dtype = sampler.noise_dtype or torch.float32
            timesteps = sampler.timesteps
            if init_frames is None:
                latents = torch.randn(self._latent_shape(c, settings), generator=generator, device="cpu",
                                      dtype=noise_dtype).to(device)
                latents = latents * sampler.init_noise_sigma
            else:
                latents, timesteps = self._start_from_video(c, settings, sampler, init_frames, generator, noise_dtype,
                                                            notes, timings, on_progress, cancel)
            reporter = StepReporter("denoise", len(timesteps), on_progress, cancel)
            reporter.check()
            for t in timesteps:
                latents = sampler.step(latents, t)
                sync()
                reporter.step()
            del cond, sampler
            timings["denoise"] = time.perf_counter() - started

            started = time.perf_counter()
            frames = self._decode(c, latents, on_progress, cancel, as_float)
            timings["decode"] = time.perf_counter() - started
        return frames

    def _start_from_video(
        self, c: Any, settings: GenerationSettings, sampler: Sampler, frames: np.ndarray, generator: Any,
        noise_dtype: Any, notes: List[str], timings: Dict[str, float], on_progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken],
    ) -> Tuple[Any, Sequence[Any]]:
        """SDEdit: encode the input, noise it to the first timestep kept, return (latents, timesteps left).

        Arithmetic and random draws in the order of diffusers' ``VideoToVideoSDPipeline`` (the parity
        test checks it): the VAE posterior's sample noise, then the added noise, each drawn at once
        for all frames (frames first) from the run's CPU generator, so the slice size never changes
        the numbers.
        """
        import torch

        if sampler.add_noise is None or sampler.begin is None:
            raise InvalidSettingsError(f"The {self.backend} backend cannot follow an input video: set strength to 1.")
        started = time.perf_counter()
        skipped = settings.skipped_steps()
        mean, std = self._encode(c, frames, on_progress, cancel)  # (T, C, h, w) each
        eps = torch.randn(tuple(mean.shape), generator=generator, device="cpu", dtype=mean.dtype).to(mean.device)
        clean = self._latent_scale(c) * (mean + std * eps)
        noise = torch.randn(tuple(clean.shape), generator=generator, device="cpu", dtype=noise_dtype)
        timesteps = sampler.begin(skipped)
        if len(timesteps) == 0:
            notes.append(f"strength {settings.strength:g} leaves no denoising step of {settings.num_steps}: the "
                         "video is the input passed through the VAE (raise the strength to change it).")
            latents = clean
        else:
            latents = sampler.add_noise(clean, noise.to(clean.device), timesteps[0])
        timings["encode_input"] = time.perf_counter() - started
        # (frames, C, h, w) -> (1, C, frames, h, w), the layout of the denoising loop
        return latents.to(noise_dtype)[None].permute(0, 2, 1, 3, 4), timesteps

    def _encode(
        self, c: Any, frames: np.ndarray, on_progress: Optional[ProgressCallback], cancel: Optional[CancelToken],
    ) -> Tuple[Any, Any]:
        """VAE posterior (mean, std) of uint8 frames, ``vae_slice_frames`` frames per encoder call."""
        import torch

        num_frames = len(frames)
        per_call = self.vae_slice_frames or num_frames
        reporter = StepReporter("encode_input", math.ceil(num_frames / per_call), on_progress, cancel)
        reporter.check()
        means, stds = [], []
        for start in range(0, num_frames, per_call):
            # uint8 -> [0, 1] -> [-1, 1], in that order: the reference pipeline's preprocessing.
            pixels = torch.from_numpy(np.ascontiguousarray(frames[start : start + per_call])).float() / 255
            pixels = (2 * pixels - 1).permute(0, 3, 1, 2).to(self.device)
            mean, std = self._encode_slice(c, pixels)
            means.append(mean)
            stds.append(std)
            reporter.step()
        return torch.cat(means), torch.cat(stds)

    def _decode(
        self, c: Any, latents: Any, on_progress: Optional[ProgressCallback], cancel: Optional[CancelToken],
        as_float: bool,
    ) -> np.ndarray:
        """Decode latents (1, C, T, h, w) ``vae_slice_frames`` frames at a time into (T, H, W, 3) on the CPU."""
        num_frames = int(latents.shape[2])
        per_call = self.vae_slice_frames or num_frames
        reporter = StepReporter("decode", math.ceil(num_frames / per_call), on_progress, cancel)
        reporter.check()
        frames: Optional[np.ndarray] = None
        for start in range(0, num_frames, per_call):
            images = self._decode_slice(c, latents[:, :, start : start + per_call])
            # Denormalise and go channels last, as diffusers' "np" output and modelscope's tensor2vid do.
            images = (images.float() * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
            part = (images if as_float else self._to_uint8(images)).cpu().numpy()
            if frames is None:
                frames = np.empty((num_frames,) + part.shape[1:], dtype=part.dtype)
            frames[start : start + part.shape[0]] = part
            reporter.step()
        assert frames is not None
        return frames

    @staticmethod
    def _to_uint8(images: Any) -> Any:
        """[0, 1] floats -> uint8, rounded like diffusers' numpy_to_pil, on the device: 4x less to copy back."""
        import torch

        return (images * 255).round().to(torch.uint8)

    # -- what each backend supplies ----------------------------------------------------------------
    def _encode_prompt(self, c: Any, settings: GenerationSettings, notes: List[str]) -> Any:
        raise NotImplementedError

    def _latent_shape(self, c: Any, settings: GenerationSettings) -> Tuple[int, ...]:
        raise NotImplementedError

    def _sampler(self, c: Any, settings: GenerationSettings, cond: Any, generator: Any) -> Sampler:
        raise NotImplementedError

    def _decode_slice(self, c: Any, latents: Any) -> Any:
        raise NotImplementedError

    def _encode_slice(self, c: Any, pixels: Any) -> Tuple[Any, Any]:
        """Pixels (n, 3, H, W) in [-1, 1] -> the VAE posterior's (mean, std), each (n, C, h, w)."""
        raise InvalidSettingsError(f"The {self.backend} backend cannot follow an input video: set strength to 1.")

    def _latent_scale(self, c: Any) -> float:
        """The VAE's scaling factor (latents = scale * posterior sample)."""
        raise NotImplementedError


def _check_init_frames(frames: Any, num_frames: int) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise InvalidSettingsError(
            f"The input frames must be RGB uint8 of shape (frames, height, width, 3); got {array.dtype} {array.shape}."
        )
    if len(array) != num_frames:
        raise InvalidSettingsError(
            f"Got {len(array)} input frames for a {num_frames}-frame video: give one input frame per output frame."
        )
    return array


__all__ = ["GenerationSettings", "GeneratedFrames", "Generator", "GeneratorBase", "Sampler", "SCHEDULERS",
           "MAX_SEED", "truncation_note", "generation_out_of_memory_advice", "size_for_aspect"]
