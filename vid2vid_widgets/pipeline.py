"""``Vid2VidPipeline``: video -> caption -> (edit) -> generated video -> saved run.

The one entry point that the panel, the ``%vid2vid`` magic and the ``vid2vid`` command call. It
holds no weights itself: captioner and generator fetch theirs from the process-wide registry, so a
second pipeline, panel or run in the same process costs only the compute.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import downloads, video
from ._compat import CPU_WARNING, resolve_device
from .captioning import BlipCaptioner, Caption
from .errors import BusyError, InvalidSettingsError, InvalidVideoError, OutputNotWritableError, Vid2VidError
from .generation.base import (MAX_SEED, GenerationSettings, Generator, generation_out_of_memory_advice,
                              missing_input_error, size_for_aspect)
from .generation.preview import DEFAULT_PREVIEW_EVERY, png_bytes
from .oom import out_of_memory_advice, out_of_memory_guard
from .progress import CancelToken, Preview, PreviewCallback, Progress, ProgressCallback, StepReporter
from .runs import OUTPUT_FILE, RunRecord, RunStore, file_digest
from .video import VideoInfo

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_CAPTION_FRAMES = 6
DEFAULT_OUTPUT_DIR = "vid2vid-runs"
MODELS_ENV = "VID2VID_MODELS"  # "tiny": every UI built from options uses the tiny random models
# Keyword arguments of Vid2VidPipeline other than GenerationSettings fields ("backend" is the UIs'
# name for ``generator``).
PIPELINE_OPTIONS = ("captioner", "backend", "generator", "model", "generator_model", "models", "device", "dtype",
                    "output_dir", "caption_frames")
_SETTING_NAMES = tuple(f.name for f in dataclasses.fields(GenerationSettings))
CAPTION_MAX_SIDE = 512  # BLIP looks at 384 px; decoding 4K frames at full size only costs memory
# A preview decodes every frame it shows: the whole of a 30-minute video took 13 s at 32x24 (minutes
# at 640x360) before the caption could even start. The first minute is enough to recognise a video;
# the caption still comes from frames spread over all of it.
PREVIEW_SECONDS = 60.0
MIN_VARIATIONS, MAX_VARIATIONS = 2, 4  # "Generate N variations": a grid a person can compare at a glance


@dataclass
class LoadedVideo:
    """An input video on disk, probed: what the panel shows in its info line."""

    path: Path
    info: VideoInfo
    name: str


@dataclass
class CaptionResult:
    caption: Caption
    video: LoadedVideo
    frames: List[np.ndarray]
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class RunResult:
    """A finished generation, saved in its own run folder."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    video_path: Path  # output.mp4 in the run folder
    record: RunRecord
    settings: GenerationSettings  # with the seed actually used
    caption: Optional[Caption]
    notes: List[str]
    timings: Dict[str, float]
    model: Dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return self.record.run_dir

    @property
    def seed(self) -> int:
        return int(self.settings.seed)


class Vid2VidPipeline:
    """Caption a video, generate a new one from (edited) words, and record every run.

    Args:
        captioner: a catalogue name ("blip-base", "blip-large", "smolvlm2", ...), a BLIP model id or
            folder, or a captioner object (default BLIP base).
        generator: a backend name ("diffusers", "animatediff", "modelscope"), a catalogue preset name
            ("zeroscope-576w", "animatediff-lightning", ...) or a generator object.
        model: a catalogue preset name, a hub id or a local folder (``vid2vid models`` lists the
            presets); an id or folder runs on ``generator``'s backend (default "diffusers").
        generator_model: the old name of ``model`` (still accepted).
        models: "tiny" for the tiny random models (tests, offline demos); None for the real ones.
        device, dtype: "auto" picks CUDA in fp16, else the CPU in fp32 (with a warning).
        output_dir: where run folders, uploads and previews go.
        caption_frames: how many frames of the video are captioned.
        **settings: defaults for ``GenerationSettings`` (num_frames, num_steps, seed, ...).

    The pipeline's default settings (``self.settings``) are ``GenerationSettings()``, then the
    preset's defaults (zeroscope: 24 frames of 576x320...), then the ``settings`` given here: what
    is given always wins, and switching the model (``set_model``) keeps it.
    """

    def __init__(
        self,
        captioner: Union[str, BlipCaptioner, None] = None,
        generator: Union[str, Generator, None] = None,
        *,
        model: Optional[str] = None,
        generator_model: Optional[str] = None,
        models: Optional[str] = None,
        device: str = "auto",
        dtype: str = "auto",
        output_dir: PathLike = DEFAULT_OUTPUT_DIR,
        caption_frames: int = DEFAULT_CAPTION_FRAMES,
        **settings: Any,
    ) -> None:
        if models not in (None, "tiny"):
            raise InvalidSettingsError(f"models must be None or 'tiny' (got {models!r}).")
        self.models = models
        # Tiny models on a CPU are the intended offline setup: no "this will be slow" warning then.
        self.device, self.dtype = resolve_device(device, dtype, warn=False)
        if self.device == "cpu" and models != "tiny" and device == "auto":
            warnings.warn(CPU_WARNING, stacklevel=2)
        self.captioner = self._make_captioner(captioner)
        self._given_settings = dict(settings)
        self.preset = None
        if generator is not None and not isinstance(generator, str):
            self.generator = generator
            self.settings = GenerationSettings(**settings)
        else:
            self._use_model(_model_choice(generator, model, generator_model), _backend_choice(generator))
        self.store = RunStore(output_dir)
        self.caption_frames = int(caption_frames)
        self._busy = threading.Lock()

    @classmethod
    def from_options(cls, *, models: Optional[str] = None, backend: Optional[str] = None,
                     **options: Any) -> "Vid2VidPipeline":
        """The pipeline a UI asks for (panel, magic, command line): options plus the environment.

        ``models`` defaults to ``$VID2VID_MODELS`` ("tiny" or unset); ``backend`` is the generator
        name; every other option is a ``Vid2VidPipeline`` argument or a ``GenerationSettings`` field.
        """
        if backend is not None:
            options["generator"] = backend
        return cls(models=models_from_environment(models), **options)

    def _make_captioner(self, captioner: Union[str, BlipCaptioner, None]) -> BlipCaptioner:
        if captioner is not None and not isinstance(captioner, str):
            return captioner
        from . import catalogue

        return catalogue.make_captioner(captioner, models=self.models, device=self.device, dtype=self.dtype)

    def _use_model(self, model: Optional[str], backend: Optional[str]) -> None:
        """Point the generator at a preset, id or folder, and take the preset's default settings."""
        from . import catalogue

        generator, preset = catalogue.make_generator(model, backend=backend, models=self.models, device=self.device,
                                                     dtype=self.dtype)
        settings = catalogue.preset_settings(preset, self._given_settings)
        self.generator, self.preset, self.settings = generator, preset, settings

    # -- one run at a time -------------------------------------------------------------------
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise BusyError("A run is already in progress: wait for it to finish, or press Cancel.")
        try:
            yield
        finally:
            self._busy.release()

    @property
    def busy(self) -> bool:
        return self._busy.locked()

    # -- models --------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The name of the generator's backend ("diffusers", "modelscope", ...)."""
        return str(getattr(self.generator, "backend", "custom"))

    def set_backend(self, backend: str) -> None:
        """Switch the text-to-video backend; its model loads on the next generate (the old one stays resident).

        Refused (``BusyError``) while a run is in progress; a backend that cannot be used (a missing
        extra) raises and leaves the current one in place.
        """
        with self._exclusive():
            self._use_model(None, backend)

    def set_model(self, model: str, backend: Optional[str] = None) -> None:
        """Switch the generator to a catalogue preset, hub id or folder; it loads on the next generate.

        The models loaded before stay resident (``vid2vid_widgets.unload()`` frees them); the default
        settings become the new preset's, except those given when the pipeline was made.
        """
        with self._exclusive():
            self._use_model(model, backend)

    @property
    def runs_dir(self) -> Path:
        """The folder that holds one folder per completed run."""
        return self.store.runs_dir

    def preload(self) -> None:
        """Load both models now (otherwise they load on first use) and keep them resident."""
        self.captioner.load()
        self.generator.load()

    # -- input ---------------------------------------------------------------------------------
    def load_video(self, source: Union[PathLike, bytes, LoadedVideo], name: Optional[str] = None) -> LoadedVideo:
        """Probe a path, or store uploaded bytes under the output folder and probe them.

        Raises ``InvalidVideoError`` with a readable message for anything that is not a video.
        """
        if isinstance(source, LoadedVideo):
            return source
        if isinstance(source, (bytes, bytearray, memoryview)):
            path = self.store.save_upload(name or "upload.mp4", bytes(source))
            try:
                info = video.probe(path)
            except InvalidVideoError:
                path.unlink(missing_ok=True)  # a rejected upload is not worth keeping on disk
                raise
        else:
            path = Path(os.fspath(source)).expanduser()
            info = video.probe(path)
        return LoadedVideo(path=path, info=info, name=name or path.name)

    def preview(
        self, source: Union[PathLike, LoadedVideo], max_side: int = 480, max_seconds: Optional[float] = PREVIEW_SECONDS
    ) -> Path:
        """A small browser-playable copy of the input for display (cached per input file).

        Only the first ``max_seconds`` are shown (None: all of it), so a long video loads quickly.
        """
        loaded = self.load_video(source)
        stat = loaded.path.stat()
        key = file_digest(loaded.path, limit=1 << 20)[:16]
        length = "all" if max_seconds is None else f"{max_seconds:g}s"
        try:
            folder = self.store.previews_dir()
        except OutputNotWritableError:
            # Showing the input must not depend on the output folder: a read-only or full output
            # folder is reported when a run is saved, not when a video is merely looked at.
            folder = Path(tempfile.gettempdir()) / "vid2vid-previews"
            folder.mkdir(exist_ok=True)
        out = folder / f"{key}-{stat.st_size}-{max_side}-{length}.mp4"
        if not out.exists():
            video.preview(loaded.path, max_side=max_side, max_seconds=max_seconds, out_path=out)
        return out

    # -- caption -------------------------------------------------------------------------------
    def caption(
        self,
        source: Union[PathLike, LoadedVideo],
        *,
        num_frames: Optional[int] = None,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        sampled: Optional[video.SampledFrames] = None,
    ) -> CaptionResult:
        """Caption ``num_frames`` frames spread over the video, in one batch, and agree on one caption.

        ``sampled``: frames already taken with ``caption_frames_of`` (the batch engine decodes the
        next video while the models work on this one); None samples them here.
        """
        with self._exclusive():
            return self._caption(source, num_frames, on_progress, cancel, sampled)

    def _caption(self, source, num_frames, on_progress, cancel, sampled=None) -> CaptionResult:
        k = int(num_frames or self.caption_frames)
        if k < 1:
            raise InvalidSettingsError(f"Caption frames must be at least 1 (got {k}).")
        started = time.perf_counter()
        loaded = self.load_video(source)
        if sampled is None:
            sampled = caption_frames_of(loaded, k)
        sampled_at = time.perf_counter()
        if cancel is not None:
            cancel.raise_if_cancelled()
        self._load_with_progress(self.captioner, on_progress, cancel)
        loaded_at = time.perf_counter()
        advice = out_of_memory_advice("captioning", ["the caption frames"], f"now {len(sampled.frames)}")
        with out_of_memory_guard(advice):
            caption = self.captioner.caption_frames(sampled.frames, sampled.timestamps, on_progress=on_progress,
                                                    cancel=cancel)
        done = time.perf_counter()
        timings = {"sample_frames": sampled_at - started, "load_captioner": loaded_at - sampled_at,
                   "caption": done - loaded_at, "total": done - started}
        return CaptionResult(caption=caption, video=loaded, frames=list(sampled.frames), timings=timings)

    # -- generate ------------------------------------------------------------------------------
    def generate(
        self,
        prompt: Union[str, Caption, None] = None,
        settings: Optional[GenerationSettings] = None,
        *,
        source: Union[PathLike, LoadedVideo, None] = None,
        caption: Optional[Caption] = None,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        on_preview: Optional[PreviewCallback] = None,
        preview_every: int = DEFAULT_PREVIEW_EVERY,
        save_previews: bool = False,
        **overrides: Any,
    ) -> RunResult:
        """Generate a video from ``prompt`` (text or a ``Caption``) and save it as a new run.

        ``settings`` (or the pipeline's defaults) with ``overrides`` applied; the seed actually used
        is in the result and in run.json. Nothing is loaded again that is already resident.
        ``on_preview`` receives the run's live ``Preview`` every ``preview_every`` steps;
        ``save_previews`` also writes them into the run folder (listed in run.json under "previews").
        """
        looks = _Previews(on_preview, preview_every, save_previews)
        with self._exclusive():
            return self._generate(prompt, settings, source, caption, on_progress, cancel, overrides, looks)[0]

    def variations(
        self,
        prompt: Union[str, Caption, None] = None,
        n: int = 4,
        settings: Optional[GenerationSettings] = None,
        *,
        seeds: Optional[Sequence[int]] = None,
        source: Union[PathLike, LoadedVideo, None] = None,
        caption: Optional[Caption] = None,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        on_preview: Optional[PreviewCallback] = None,
        preview_every: int = DEFAULT_PREVIEW_EVERY,
        save_previews: bool = False,
        batched: bool = True,
        **overrides: Any,
    ) -> List[RunResult]:
        """``n`` videos (2 to 4) of the same words and settings with ``n`` seeds; each its own run folder.

        Seeds: ``seeds`` when given; else the settings' seed and the next ones (seed, seed + 1, ...);
        else random ones. Made in one batched pass (``batched``), or one after another when the GPU's
        memory does not allow it (with a note). ``regenerate`` on any of the runs gives the same frames.
        """
        if seeds is None:
            if not isinstance(n, int) or not MIN_VARIATIONS <= n <= MAX_VARIATIONS:
                raise InvalidSettingsError(
                    f"Variations come {MIN_VARIATIONS} to {MAX_VARIATIONS} at a time (got {n!r}).")
            base = (settings or self.settings).replace(**overrides).seed
            seeds = ([(int(base) + i) % (MAX_SEED + 1) for i in range(n)] if base is not None
                     else [secrets.randbelow(MAX_SEED + 1) for _ in range(n)])
        seeds = [int(seed) for seed in seeds]
        if not MIN_VARIATIONS <= len(seeds) <= MAX_VARIATIONS or len(set(seeds)) != len(seeds):
            raise InvalidSettingsError(f"Give {MIN_VARIATIONS} to {MAX_VARIATIONS} different seeds (got {seeds}).")
        looks = _Previews(on_preview, preview_every, save_previews)
        with self._exclusive():
            return self._generate(prompt, settings, source, caption, on_progress, cancel, overrides, looks,
                                  seeds=seeds, batched=batched)

    def _generate(self, prompt, settings, source, caption, on_progress, cancel, overrides,
                  looks: Optional["_Previews"] = None, seeds: Optional[List[int]] = None, batched: bool = True,
                  keep: Optional[int] = None) -> List[RunResult]:
        """One run (``seeds`` None) or one run per seed (variations); ``keep``: save only that variation."""
        if isinstance(prompt, Caption):
            caption, prompt = prompt, prompt.text
        base = settings or self.settings
        if prompt is not None:
            overrides["prompt"] = prompt
        checked, notices = base.replace(**overrides).checked()
        if checked.follows_input and source is None:  # before any model loads
            raise missing_input_error(checked)
        started = time.perf_counter()
        self._load_with_progress(self.generator, on_progress, cancel)
        loaded_at = time.perf_counter()
        follow: Optional[Dict[str, Any]] = None
        generate_kwargs: Dict[str, Any] = {}
        if checked.follows_input:
            loaded = self.load_video(source)
            source = loaded
            if not _size_was_chosen(base, overrides, self._preset_defaults()):
                checked = checked.replace(**self.size_for_input(loaded))
                notices = [*notices, f"size {checked.width}x{checked.height} follows the input's aspect ratio "
                                     f"({loaded.info.width}x{loaded.info.height}); set a size to choose another."]
            generate_kwargs["init_frames"], follow = self._input_window(loaded, checked)
            notices = [*notices, *follow.pop("notes")]
        looks = looks or _Previews()
        if _accepts_previews(self.generator):  # a generator of one's own making may have no live preview
            generate_kwargs.update(looks.generator_kwargs())
        prepared_at = time.perf_counter()
        # Backends on GeneratorBase guard themselves with their own advice; this covers any other.
        with out_of_memory_guard(generation_out_of_memory_advice(checked)):
            if seeds is None:
                results = [self.generator.generate(checked, on_progress=on_progress, cancel=cancel, **generate_kwargs)]
            elif hasattr(self.generator, "generate_variations"):
                results = self.generator.generate_variations(checked, seeds, on_progress=on_progress, cancel=cancel,
                                                             batched=batched, **generate_kwargs)
            else:  # a generator of its own making: one video after another
                results = [self.generator.generate(checked.replace(seed=seed), on_progress=on_progress,
                                                   cancel=cancel, **generate_kwargs) for seed in seeds]
        generated_at = time.perf_counter()
        previews = looks.per_video(len(results))
        saved = []
        for index, result in enumerate(results):
            if keep is not None and index != keep:
                continue
            variation = None
            if seeds is not None:
                variation = {"index": index + 1, "of": len(seeds), "seeds": seeds,
                             "batched": getattr(result, "batch", 1) > 1}
            timings = {"load_generator": loaded_at - started, **{f"generate.{k}": v for k, v in result.timings.items()},
                       "generate": generated_at - prepared_at}
            if follow is not None:
                timings["prepare_input"] = prepared_at - loaded_at
            saved.append(self._save_run(result, caption, source, follow, notices, timings, started, previews[index],
                                        variation, on_progress))
        return saved

    def _save_run(self, result, caption, source, follow, notices, timings, started, previews, variation,
                  on_progress) -> RunResult:
        """Encode one generated video into a new run folder and record it; nothing half-written is kept."""
        notes = list(dict.fromkeys([*notices, *result.notes]))  # keep order, drop repeats
        run_dir = self.store.new_run_dir(result.settings.prompt)
        try:
            encode_started = time.perf_counter()
            encode = StepReporter("encode", 1, on_progress, None)
            video.encode_mp4(result.frames, result.settings.fps, run_dir / OUTPUT_FILE)
            encode.step()
            timings = {**timings, "encode": time.perf_counter() - encode_started}
            timings["total"] = time.perf_counter() - started
            record = {
                "settings": result.settings.to_dict(),
                "caption": caption.to_dict() if caption is not None else None,
                "input": self._input_reference(source),
                "follow": dict(follow) if follow is not None else None,
                "notes": notes,
                "models": {"generator": {**(result.model or self.generator.describe()),
                                         "preset": self.preset.name if self.preset is not None else None},
                           "captioner": self.captioner.describe() if caption is not None else None},
                "timings": timings,
                "frames_shape": list(result.frames.shape),
            }
            if variation is not None:
                record["variation"] = variation
            if previews:
                record["previews"] = self.store.save_previews(run_dir, previews)
            record = self.store.save_run(run_dir, record)
        except BaseException:
            self.store.discard(run_dir)  # no half run is ever shown as a result
            raise
        return RunResult(frames=result.frames, video_path=record.output_path, record=record,
                         settings=result.settings, caption=caption, notes=notes, timings=timings,
                         model=record.data["models"]["generator"])

    def size_for_input(self, source: Union[PathLike, LoadedVideo]) -> Dict[str, int]:
        """The output size that follows ``source``'s aspect ratio at about the default pixel count.

        In multiples of the generator's size unit (8; 64 for the ModelScope original), e.g. a
        1280x720 clip -> 344x192 with the diffusers backend.
        """
        info = self.load_video(source).info
        unit = int(getattr(self.generator, "size_unit", 8))
        default = self._preset_defaults()
        width, height = size_for_aspect(info.width / info.height, default.width * default.height, unit)
        return {"width": width, "height": height}

    def _preset_defaults(self) -> GenerationSettings:
        """The model's own default settings (the preset's; ``GenerationSettings()`` for other models)."""
        return self.preset.settings() if self.preset is not None else GenerationSettings()

    def _input_window(self, loaded: LoadedVideo, settings: GenerationSettings) -> Tuple[np.ndarray, Dict[str, Any]]:
        """The input frames a video-to-video run follows, chosen by time, and what to record of them."""
        times, notes = video.window_times(loaded.info.duration, settings.num_frames, settings.start,
                                          settings.window_seconds)
        # Twice the output's longest side: enough for the generator's anti-aliased crop and resize,
        # without decoding 4K frames at full size.
        sampled = video.frames_at(loaded.path, times, max_side=2 * max(settings.width, settings.height))
        follow = {"strength": settings.strength, "start": times[0],
                  "window": min(settings.window_seconds, loaded.info.duration),
                  "frame_times": [round(t, 4) for t in sampled.timestamps], "notes": notes}
        return np.stack(sampled.frames), follow

    def run(
        self,
        source: Union[PathLike, LoadedVideo],
        settings: Optional[GenerationSettings] = None,
        *,
        prompt: Optional[str] = None,
        num_caption_frames: Optional[int] = None,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        on_preview: Optional[PreviewCallback] = None,
        preview_every: int = DEFAULT_PREVIEW_EVERY,
        save_previews: bool = False,
        **overrides: Any,
    ) -> RunResult:
        """Caption ``source`` then generate from the caption (or from ``prompt`` when given)."""
        looks = _Previews(on_preview, preview_every, save_previews)
        with self._exclusive():
            captioned = self._caption(source, num_caption_frames, on_progress, cancel)
            text = prompt if prompt is not None else captioned.caption.text
            return self._generate(text, settings, captioned.video, captioned.caption, on_progress, cancel,
                                  overrides, looks)[0]

    def regenerate(self, run: Union[PathLike, RunRecord], **overrides: Any) -> RunResult:
        """Generate again from a saved run.json: same prompt, seed and settings give the same frames."""
        record = run if isinstance(run, RunRecord) else RunStore.load(run)
        if record is None:
            raise Vid2VidError(f"{run} is not a complete run folder (no readable run.json).")
        settings = GenerationSettings.from_dict(record.data["settings"])
        caption = record.data.get("caption")
        source = (record.data.get("input") or {}).get("path")
        if settings.follows_input:
            _check_same_input(record)  # the frames followed must be the same ones, or it is another video
        # A variation made in a batch is made in the same batch again: a video made alone differs from
        # it in the last decimal places (other kernels), and "the same frames" means the same bytes.
        variation = record.data.get("variation") or {}
        batch: Dict[str, Any] = {}
        if variation.get("batched") and not overrides:
            batch = {"seeds": [int(seed) for seed in variation["seeds"]], "keep": int(variation["index"]) - 1}
        with self._exclusive():
            return self._generate(
                None, settings, source if source and Path(source).exists() else None,
                Caption(**caption) if caption else None, None, None, overrides, **batch,
            )[0]

    def history(self) -> List[RunRecord]:
        """Completed runs in the output folder, newest first."""
        return self.store.history()

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _load_with_progress(model: Any, on_progress: Optional[ProgressCallback],
                            cancel: Optional[CancelToken] = None) -> None:
        reporter = StepReporter("load", 1, on_progress, None)
        if on_progress is not None:
            on_progress(Progress("load", 0, 1, 0.0))  # say so at once: a first load can take minutes
        # A first use downloads the weights: its bytes, speed and Cancel go through the same channel.
        with downloads.reporting(on_progress, cancel):
            model.load()
        reporter.step()

    @staticmethod
    def _input_reference(source: Union[PathLike, LoadedVideo, None]) -> Optional[Dict[str, Any]]:
        if source is None:
            return None
        path = source.path if isinstance(source, LoadedVideo) else Path(os.fspath(source))
        reference: Dict[str, Any] = {"path": str(Path(path).resolve()), "name": Path(path).name}
        try:
            reference["size"] = Path(path).stat().st_size
            reference["sha256_head"] = file_digest(path)
        except OSError:
            pass
        if isinstance(source, LoadedVideo):
            info = source.info
            reference.update(width=info.width, height=info.height, fps=info.fps, duration=info.duration)
        return reference


class _Previews:
    """A run's live previews: passed on to the caller's callback, and kept when they are to be saved."""

    def __init__(self, on_preview: Optional[PreviewCallback] = None, every: int = DEFAULT_PREVIEW_EVERY,
                 save: bool = False) -> None:
        if int(every) != every or every < 0:
            raise InvalidSettingsError(f"preview_every must be a whole number of steps, 0 for none (got {every!r}).")
        self.on_preview, self.every, self.save = on_preview, int(every), bool(save)
        self.seen: List[Preview] = []

    def generator_kwargs(self) -> Dict[str, Any]:
        # Only when asked: a generator of one's own making need not know about previews.
        if self.every == 0 or (self.on_preview is None and not self.save):
            return {}
        return {"on_preview": self._receive, "preview_every": self.every}

    def _receive(self, preview: Preview) -> None:
        if self.save:
            self.seen.append(preview)
        if self.on_preview is not None:
            self.on_preview(preview)

    def per_video(self, videos: int) -> List[List[Tuple[int, int, bytes]]]:
        """The kept previews as (step, total, PNG) for each video: rows of a batch's strips, or the
        previews of videos made one after another (a step not after the last one starts the next video)."""
        split: List[List[Tuple[int, int, bytes]]] = [[] for _ in range(videos)]
        index, last_step = 0, 0
        for preview in self.seen:
            rows = preview.latent_shape[0] if preview.latent_shape else 1
            if rows == videos and videos > 1:
                for i, row in enumerate(np.array_split(preview.image, videos, axis=0)):
                    split[i].append((preview.step, preview.total, png_bytes(row)))
                continue
            if preview.step <= last_step:
                index = min(index + 1, videos - 1)
            last_step = preview.step
            split[index].append((preview.step, preview.total, png_bytes(preview.image)))
        return split


def _accepts_previews(generator: Any) -> bool:
    import inspect

    try:
        return "on_preview" in inspect.signature(generator.generate).parameters
    except (TypeError, ValueError):
        return False


def _size_was_chosen(base: GenerationSettings, overrides: Dict[str, Any], default: GenerationSettings) -> bool:
    """Did the person choose the output size (here or in the pipeline's defaults)? Else follow the input's.

    ``default``: the model's own default settings (a preset's size is not a choice of the person's).
    """
    return "height" in overrides or "width" in overrides or (base.height, base.width) != (default.height, default.width)


def _check_same_input(record: RunRecord) -> None:
    """Refuse to regenerate a video-to-video run whose input file is gone or changed."""
    reference = record.data.get("input") or {}
    path = reference.get("path")
    if not path or not Path(path).is_file():
        raise Vid2VidError(
            f"Run {record.name} followed the input video {path!r}, which is no longer there: put the same file "
            "back at that path to regenerate it exactly (or generate anew from the caption)."
        )
    if reference.get("sha256_head") and file_digest(path) != reference["sha256_head"]:
        raise Vid2VidError(
            f"Run {record.name} followed {path!r}, but that file has changed since: regenerating would follow "
            "another video. Restore the original file to reproduce the run."
        )


def caption_frames_of(source: LoadedVideo, k: int) -> video.SampledFrames:
    """The frames a caption looks at: ``k`` spread over the whole video, at most CAPTION_MAX_SIDE pixels."""
    if k < 1:
        raise InvalidSettingsError(f"Caption frames must be at least 1 (got {k}).")
    return video.sample_frames(source.path, k, max_side=CAPTION_MAX_SIDE)


def _backend_choice(generator: Optional[str]) -> Optional[str]:
    """``generator`` when it names a backend (or an unknown one, refused later); None for a preset or nothing."""
    return generator if generator is not None and not _is_preset(generator) else None


def _is_preset(name: str) -> bool:
    """A preset name that is not also a backend name ("animatediff" is both: then it is the backend)."""
    from . import catalogue
    from .generation import BACKENDS

    return name not in BACKENDS and catalogue.generator_preset(name) is not None


def _model_choice(generator: Optional[str], model: Optional[str], generator_model: Optional[str]) -> Optional[str]:
    """The one model asked for: ``model``, its old name ``generator_model``, or a preset named as ``generator``."""
    named = [m for m in (model, generator_model, generator if generator and _is_preset(generator) else None) if m]
    if len(set(named)) > 1:
        raise InvalidSettingsError(f"Two models were asked for ({' and '.join(repr(m) for m in named)}): "
                                   "give one, as model=... (--model on the command line).")
    return named[0] if named else None


def models_from_environment(models: Optional[str] = None) -> Optional[str]:
    """The models choice: ``models`` when given, else ``$VID2VID_MODELS`` ("tiny"), else None (the real ones)."""
    return models if models is not None else (os.environ.get(MODELS_ENV) or None)


def split_options(options: Dict[str, Any], what: str = "pipeline") -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Sort UI options into pipeline arguments and ``GenerationSettings`` fields; unknown names are a TypeError."""
    unknown = set(options) - set(PIPELINE_OPTIONS) - set(_SETTING_NAMES)
    if unknown:
        raise TypeError(f"Unknown {what} setting(s): {', '.join(sorted(unknown))}. Known: "
                        f"{', '.join(PIPELINE_OPTIONS + _SETTING_NAMES)}.")
    pipeline = {k: v for k, v in options.items() if k in PIPELINE_OPTIONS}
    settings = {k: v for k, v in options.items() if k in _SETTING_NAMES}
    return pipeline, settings


__all__ = ["Vid2VidPipeline", "LoadedVideo", "CaptionResult", "RunResult", "models_from_environment", "caption_frames_of",
           "split_options", "DEFAULT_CAPTION_FRAMES", "DEFAULT_OUTPUT_DIR", "PIPELINE_OPTIONS"]
