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
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from ..errors import GPUOutOfMemoryError, InvalidSettingsError
from ..models import ModelKey
from ..video.fit import fit_frames
from ..oom import out_of_memory_advice, out_of_memory_guard
from ..progress import CancelToken, PreviewCallback, ProgressCallback, StepReporter
from .preview import DEFAULT_PREVIEW_EVERY, LatentRGBMap, PreviewMaker, fit_latent_rgb, published_latent_rgb

SCHEDULERS = ("dpm++", "ddim", "euler")  # euler: what few-step distilled models prescribe
MAX_SEED = 2**32 - 1
# Fitted latent->RGB maps, one per loaded model (ModelKey): fitting takes a few VAE calls, once.
_FITTED: Dict[ModelKey, LatentRGBMap] = {}
_FITTED_LOCK = threading.Lock()


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
    batch: int = 1  # videos made together in this one pass (variations), timings shared by all of them


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


def missing_input_error(settings: GenerationSettings) -> InvalidSettingsError:
    """The one message for a strength below 1 with no video to follow (pipeline and generators alike)."""
    return InvalidSettingsError(
        f"strength {settings.strength:g} follows an input video, but none was given: pass one (source=... or "
        "init_frames=... in Python, vid2vid run VIDEO on the command line, or load a video in the panel), or set "
        "strength to 1 to make the video from the words alone."
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
    # Live preview: the model's estimate of the clean latents (x0) after the last ``step``. ``step``
    # only keeps references to what it computed anyway; the estimate is computed when this is called,
    # so a run without previews pays nothing for it.
    estimate_x0: Optional[Callable[[], Any]] = None


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
    * for live previews, ``Sampler.estimate_x0`` and ``_sd_family_vae``; for variations in one batch,
      ``_repeat_cond`` when the conditioning is not one tensor;
    * optionally ``_adapt`` (fit settings to the model, with notes), ``_run_context`` (autocast...),
      ``_to_uint8``, ``_after_run``, ``_memory_tips`` and ``_describe_extra``.
    """

    backend: str = ""
    role: str = ""
    preview_map: str = "auto"  # "auto", "published" or "fitted": which latent->RGB map previews use

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
        on_preview: Optional[PreviewCallback] = None,
        preview_every: int = DEFAULT_PREVIEW_EVERY,
    ) -> GeneratedFrames:
        """Generate uint8 frames (T, H, W, 3) for ``settings``; progress per step; cancellable between steps.

        With ``settings.strength`` below 1, ``init_frames`` (num_frames RGB uint8 frames, any size: they
        are centre-cropped and resized to the output size) are the video to follow. ``on_preview``
        receives a ``Preview`` (the current estimate of the finished video as a small strip) every
        ``preview_every`` steps and after the last one; without it (or with 0) nothing extra is computed.
        """
        return self._generate(settings, init_frames, on_progress, cancel, False, None, on_preview, preview_every)[0]

    def generate_variations(
        self,
        settings: GenerationSettings,
        seeds: Sequence[int],
        *,
        init_frames: Optional[np.ndarray] = None,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        on_preview: Optional[PreviewCallback] = None,
        preview_every: int = DEFAULT_PREVIEW_EVERY,
        batched: bool = True,
    ) -> List[GeneratedFrames]:
        """One video per seed, same words and settings: in one batched pass when memory allows.

        Batched, the UNet sees all videos at once (latents batch N, guidance batch 2N); each video's
        starting noise still comes from its own seed alone, so it matches a run of that seed by itself
        (to float rounding). Out of GPU memory, the videos are made one after another, with a note.
        """
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise InvalidSettingsError("Give at least one seed.")
        note = None
        if batched and len(seeds) > 1:
            try:
                return self._generate(settings, init_frames, on_progress, cancel, False, seeds, on_preview,
                                      preview_every)
            except GPUOutOfMemoryError:  # the guard has freed the memory; the models are still loaded
                note = (f"{len(seeds)} variations at once did not fit in the GPU's memory: they were made one "
                        "after another instead (same videos, more time).")
        results = []
        for seed in seeds:
            result = self._generate(settings.replace(seed=seed), init_frames, on_progress, cancel, False, None,
                                    on_preview, preview_every)[0]
            if note:
                result.notes.insert(0, note)
            results.append(result)
        return results

    def _generate_float(
        self,
        settings: GenerationSettings,
        *,
        init_frames: Optional[np.ndarray] = None,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        seeds: Optional[Sequence[int]] = None,
    ) -> Any:
        """Like ``generate`` but ``frames`` are float32 in [0, 1], before rounding: for exact parity checks.

        With ``seeds``, like ``generate_variations`` (batched): a list, one result per seed.
        """
        results = self._generate(settings, init_frames, on_progress, cancel, True, seeds, None, 0)
        return results if seeds is not None else results[0]

    def _generate(
        self, settings: GenerationSettings, init_frames: Optional[np.ndarray], on_progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken], as_float: bool, seeds: Optional[Sequence[int]],
        on_preview: Optional[PreviewCallback], preview_every: int,
    ) -> List[GeneratedFrames]:
        # checked() is idempotent: it fixes sizes and draws a seed when the caller has not done so.
        settings, notes = settings.checked()
        seeds = [int(settings.replace(seed=s).checked()[0].seed) for s in seeds] if seeds else [int(settings.seed)]
        if settings.follows_input and init_frames is None:
            raise missing_input_error(settings)
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
        previews = None
        if on_preview is not None and preview_every and int(preview_every) > 0:
            previews = (self.latent_rgb_map(), int(preview_every), on_preview)
        with out_of_memory_guard(self._out_of_memory_advice(settings, len(seeds))):
            try:
                videos = self._run(components, settings, seeds, init_frames, notes, timings, on_progress, cancel,
                                   as_float, previews)
            finally:
                self._after_run(components)
        model = self.describe()
        return [GeneratedFrames(frames=frames, settings=settings.replace(seed=seed), notes=list(notes),
                                timings=dict(timings), model=model, batch=len(seeds))
                for frames, seed in zip(videos, seeds)]

    def _adapt(self, settings: GenerationSettings, components: Any) -> Tuple[GenerationSettings, List[str]]:
        """Fit checked settings to what this model can do; a note for everything changed or ignored."""
        return settings, []

    def _after_run(self, components: Any) -> None:
        """Runs after every run, finished or failed (e.g. send offloaded models back to the CPU)."""

    def _run_context(self) -> ContextManager[Any]:
        """Entered around the whole run (encode, denoise, decode), inside ``torch.inference_mode``."""
        return contextlib.nullcontext()

    def _out_of_memory_advice(self, settings: GenerationSettings, videos: int = 1) -> str:
        tips = self._memory_tips()
        if videos > 1:
            tips = [f"make fewer variations at once (now {videos})", *tips]
        return generation_out_of_memory_advice(settings, tips)

    def _memory_tips(self) -> List[str]:
        """Other ways to need less memory with this backend, for the out-of-memory message."""
        if not self.vae_slice_frames or self.vae_slice_frames > 1:
            return [f"decode fewer frames at a time (vae_slice_frames, now {self.vae_slice_frames or 'all'})"]
        return []

    def _run(
        self, c: Any, settings: GenerationSettings, seeds: Sequence[int], init_frames: Optional[np.ndarray],
        notes: List[str], timings: Dict[str, float], on_progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken], as_float: bool, previews: Optional[Tuple[Any, int, PreviewCallback]] = None,
    ) -> List[np.ndarray]:
        import torch

        device = torch.device(self.device)
        # Wait for the GPU after each step, so that progress times and cancel points match real work.
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        with torch.inference_mode(), self._run_context():
            started = time.perf_counter()
            cond = self._encode_prompt(c, settings, notes)
            if len(seeds) > 1:
                cond = self._repeat_cond(cond, len(seeds))
            timings["encode_prompt"] = time.perf_counter() - started

            started = time.perf_counter()
            # One CPU generator per video: the starting noise is the same on every device, and a video
            # made in a batch starts from exactly the noise its seed gives alone.
            generators = [torch.Generator(device="cpu").manual_seed(int(seed)) for seed in seeds]
            sampler = self._sampler(c, settings, cond, generators[0] if len(generators) == 1 else generators)
            noise_dtype = sampler.noise_dtype or torch.float32
            timesteps = sampler.timesteps
            if init_frames is None:
                shape = self._latent_shape(c, settings)
                latents = torch.cat([torch.randn(shape, generator=g, device="cpu", dtype=noise_dtype)
                                     for g in generators]).to(device)
                latents = latents * sampler.init_noise_sigma
            else:
                latents, timesteps = self._start_from_video(c, settings, sampler, init_frames, generators, noise_dtype,
                                                            notes, timings, on_progress, cancel)
            maker = None
            if previews is not None and sampler.estimate_x0 is not None:
                rgb_map, every, on_preview = previews
                maker = PreviewMaker(len(timesteps), every, rgb_map, on_preview)
            reporter = StepReporter("denoise", len(timesteps), on_progress, cancel)
            reporter.check()
            preview_seconds = 0.0
            for step, t in enumerate(timesteps, 1):
                latents = sampler.step(latents, t)
                sync()
                if maker is not None:
                    preview_started = time.perf_counter()
                    maker.after_step(step, sampler.estimate_x0)
                    preview_seconds += time.perf_counter() - preview_started
                reporter.step()
            del cond, sampler
            timings["denoise"] = time.perf_counter() - started
            if maker is not None:
                timings["preview"] = preview_seconds  # inside "denoise": what the previews cost

            started = time.perf_counter()
            videos = self._decode(c, latents, on_progress, cancel, as_float)
            timings["decode"] = time.perf_counter() - started
        return videos

    def _repeat_cond(self, cond: Any, videos: int) -> Any:
        """The conditioning for a batch of ``videos``: each row repeated, in the order the sampler's
        guidance splits it ([uncond x N, cond x N] for a [negative, prompt] pair)."""
        return cond.repeat_interleave(videos, dim=0)

    # -- live preview ------------------------------------------------------------------------------
    def latent_rgb_map(self) -> LatentRGBMap:
        """The latent->RGB map of this model's previews (``generation.preview`` says how each is obtained).

        ``preview_map`` "auto": the published Stable Diffusion 1.x map for that VAE, else one fitted
        from the VAE (once per process and model); "published" or "fitted" choose one.
        """
        if self.preview_map not in ("auto", "published", "fitted"):
            raise InvalidSettingsError(f"preview_map must be 'auto', 'published' or 'fitted' (got {self.preview_map!r}).")
        components = self._components()
        choice = self.preview_map
        if choice == "auto":
            choice = "published" if self._sd_family_vae(components) else "fitted"
        if choice == "published":
            return published_latent_rgb()
        with _FITTED_LOCK:
            if self.key not in _FITTED:
                _FITTED[self.key] = self._fit_latent_rgb(components)
            return _FITTED[self.key]

    def _sd_family_vae(self, c: Any) -> bool:
        """True when the VAE is Stable Diffusion 1.x's (the published latent->RGB map applies)."""
        return False

    def _fit_latent_rgb(self, c: Any) -> LatentRGBMap:
        import torch

        def encode(pixels: Any) -> Any:
            mean, _ = self._encode_slice(c, pixels.to(self.device))
            return mean * self._latent_scale(c)

        def decode(latents: Any) -> Any:  # (n, C, h, w) -> the skeleton's (1, C, n, h, w) layout
            return self._decode_slice(c, latents.permute(1, 0, 2, 3)[None])

        with torch.inference_mode(), self._run_context():
            return fit_latent_rgb(encode, decode)

    def _start_from_video(
        self, c: Any, settings: GenerationSettings, sampler: Sampler, frames: np.ndarray, generators: Sequence[Any],
        noise_dtype: Any, notes: List[str], timings: Dict[str, float], on_progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken],
    ) -> Tuple[Any, Sequence[Any]]:
        """SDEdit: encode the input, noise it to the first timestep kept, return (latents, timesteps left).

        Arithmetic and random draws in the order of diffusers' ``VideoToVideoSDPipeline`` (the parity
        test checks it): the VAE posterior's sample noise, then the added noise, each drawn at once
        for all frames (frames first) from each video's CPU generator, so the slice size never changes
        the numbers. The input is encoded once for all the videos of a batch.
        """
        import torch

        if sampler.add_noise is None or sampler.begin is None:
            raise InvalidSettingsError(f"The {self.backend} backend cannot follow an input video: set strength to 1.")
        started = time.perf_counter()
        skipped = settings.skipped_steps()
        mean, std = self._encode(c, frames, on_progress, cancel)  # (T, C, h, w) each
        timesteps = sampler.begin(skipped)
        if len(timesteps) == 0:
            notes.append(f"strength {settings.strength:g} leaves no denoising step of {settings.num_steps}: the "
                         "video is the input passed through the VAE (raise the strength to change it).")
        videos = []
        for generator in generators:
            eps = torch.randn(tuple(mean.shape), generator=generator, device="cpu", dtype=mean.dtype).to(mean.device)
            clean = self._latent_scale(c) * (mean + std * eps)
            noise = torch.randn(tuple(clean.shape), generator=generator, device="cpu", dtype=noise_dtype)
            latents = clean if len(timesteps) == 0 else sampler.add_noise(clean, noise.to(clean.device), timesteps[0])
            # (frames, C, h, w) -> (1, C, frames, h, w), the layout of the denoising loop
            videos.append(latents.to(noise_dtype)[None].permute(0, 2, 1, 3, 4))
        timings["encode_input"] = time.perf_counter() - started
        return torch.cat(videos), timesteps

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
    ) -> List[np.ndarray]:
        """Decode latents (N, C, T, h, w) ``vae_slice_frames`` frames at a time into N arrays (T, H, W, 3)
        on the CPU, one video after another (the same calls as for a video made alone)."""
        num_videos, num_frames = int(latents.shape[0]), int(latents.shape[2])
        per_call = self.vae_slice_frames or num_frames
        reporter = StepReporter("decode", num_videos * math.ceil(num_frames / per_call), on_progress, cancel)
        reporter.check()
        videos = []
        for index in range(num_videos):
            frames: Optional[np.ndarray] = None
            for start in range(0, num_frames, per_call):
                images = self._decode_slice(c, latents[index : index + 1, :, start : start + per_call])
                # Denormalise and go channels last, as diffusers' "np" output and modelscope's tensor2vid do.
                images = (images.float() * 0.5 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
                part = (images if as_float else self._to_uint8(images)).cpu().numpy()
                if frames is None:
                    frames = np.empty((num_frames,) + part.shape[1:], dtype=part.dtype)
                frames[start : start + part.shape[0]] = part
                reporter.step()
            assert frames is not None
            videos.append(frames)
        return videos

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
           "MAX_SEED", "truncation_note", "missing_input_error", "generation_out_of_memory_advice", "size_for_aspect"]
