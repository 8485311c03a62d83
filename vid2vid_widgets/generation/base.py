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
from ..oom import out_of_memory_advice, out_of_memory_guard
from ..progress import CancelToken, ProgressCallback, StepReporter

SCHEDULERS = ("dpm++", "ddim")
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
                             num_steps=int(self.num_steps), fps=int(self.fps), **sizes)
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
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> GeneratedFrames:
        """Generate uint8 frames (T, H, W, 3) for ``settings``; progress per step; cancellable between steps."""
        return self._generate(settings, on_progress, cancel, as_float=False)

    def _generate_float(
        self,
        settings: GenerationSettings,
        *,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> GeneratedFrames:
        """Like ``generate`` but ``frames`` are float32 in [0, 1], before rounding: for exact parity checks."""
        return self._generate(settings, on_progress, cancel, as_float=True)

    def _generate(
        self, settings: GenerationSettings, on_progress: Optional[ProgressCallback], cancel: Optional[CancelToken],
        as_float: bool,
    ) -> GeneratedFrames:
        # checked() is idempotent: it fixes sizes and draws a seed when the caller has not done so.
        settings, notes = settings.checked()
        if cancel is not None:
            cancel.raise_if_cancelled()
        timings: Dict[str, float] = {}
        started = time.perf_counter()
        components = self._components()
        timings["load"] = time.perf_counter() - started
        settings, adapt_notes = self._adapt(settings, components)
        notes.extend(adapt_notes)
        with out_of_memory_guard(self._out_of_memory_advice(settings)):
            try:
                frames = self._run(components, settings, notes, timings, on_progress, cancel, as_float)
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
        self, c: Any, settings: GenerationSettings, notes: List[str], timings: Dict[str, float],
        on_progress: Optional[ProgressCallback], cancel: Optional[CancelToken], as_float: bool,
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
            latents = torch.randn(self._latent_shape(c, settings), generator=generator, device="cpu",
                                  dtype=noise_dtype).to(device)
            latents = latents * sampler.init_noise_sigma
            reporter = StepReporter("denoise", len(sampler.timesteps), on_progress, cancel)
            reporter.check()
            for t in sampler.timesteps:
                latents = sampler.step(latents, t)
                sync()
                reporter.step()
            del cond, sampler
            timings["denoise"] = time.perf_counter() - started

            started = time.perf_counter()
            frames = self._decode(c, latents, on_progress, cancel, as_float)
            timings["decode"] = time.perf_counter() - started
        return frames

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


__all__ = ["GenerationSettings", "GeneratedFrames", "Generator", "GeneratorBase", "Sampler", "SCHEDULERS",
           "MAX_SEED", "truncation_note", "generation_out_of_memory_advice"]
