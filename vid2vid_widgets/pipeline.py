"""``Vid2VidPipeline``: video -> caption -> (edit) -> generated video -> saved run.

The one entry point that the panel, the ``%vid2vid`` magic and the ``vid2vid`` command call. It
holds no weights itself: captioner and generator fetch theirs from the process-wide registry, so a
second pipeline, panel or run in the same process costs only the compute.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from . import downloads, video
from ._compat import CPU_WARNING, resolve_device
from .captioning import DEFAULT_CAPTION_MODEL, BlipCaptioner, Caption
from .errors import BusyError, InvalidSettingsError, InvalidVideoError, OutputNotWritableError, Vid2VidError
from .generation import make_generator
from .generation.base import GenerationSettings, Generator, generation_out_of_memory_advice, size_for_aspect
from .oom import out_of_memory_advice, out_of_memory_guard
from .progress import CancelToken, Progress, ProgressCallback, StepReporter
from .runs import OUTPUT_FILE, RunRecord, RunStore, file_digest
from .video import VideoInfo

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_CAPTION_FRAMES = 6
DEFAULT_OUTPUT_DIR = "vid2vid-runs"
MODELS_ENV = "VID2VID_MODELS"  # "tiny": every UI built from options uses the tiny random models
# Keyword arguments of Vid2VidPipeline other than GenerationSettings fields ("backend" is the UIs'
# name for ``generator``).
PIPELINE_OPTIONS = ("captioner", "backend", "generator", "generator_model", "models", "device", "dtype",
                    "output_dir", "caption_frames")
_SETTING_NAMES = tuple(f.name for f in dataclasses.fields(GenerationSettings))
CAPTION_MAX_SIDE = 512  # BLIP looks at 384 px; decoding 4K frames at full size only costs memory
# A preview decodes every frame it shows: the whole of a 30-minute video took 13 s at 32x24 (minutes
# at 640x360) before the caption could even start. The first minute is enough to recognise a video;
# the caption still comes from frames spread over all of it.
PREVIEW_SECONDS = 60.0


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
        captioner: a BLIP model id or folder, or a captioner object (default BLIP base).
        generator: a backend name ("diffusers", "modelscope") or a generator object.
        generator_model: the model id or folder for the backend (default: the backend's own).
        models: "tiny" for the tiny random models (tests, offline demos); None for the real ones.
        device, dtype: "auto" picks CUDA in fp16, else the CPU in fp32 (with a warning).
        output_dir: where run folders, uploads and previews go.
        caption_frames: how many frames of the video are captioned.
        **settings: defaults for ``GenerationSettings`` (num_frames, num_steps, seed, ...).
    """

    def __init__(
        self,
        captioner: Union[str, BlipCaptioner, None] = None,
        generator: Union[str, Generator, None] = None,
        *,
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
        self.generator = make_generator(generator, generator_model, models=models, device=self.device, dtype=self.dtype)
        self.store = RunStore(output_dir)
        self.caption_frames = int(caption_frames)
        self.settings = GenerationSettings(**settings)
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
        model_id = captioner
        if model_id is None:
            if self.models == "tiny":
                from .tiny import tiny_model_path

                model_id = tiny_model_path("captioner")
            else:
                model_id = DEFAULT_CAPTION_MODEL
        return BlipCaptioner(model_id, device=self.device, dtype=self.dtype)

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
        from . import generation

        with self._exclusive():
            self.generator = generation.make_generator(backend, models=self.models, device=self.device,
                                                       dtype=self.dtype)

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
    ) -> CaptionResult:
        """Caption ``num_frames`` frames spread over the video, in one batch, and agree on one caption."""
        with self._exclusive():
            return self._caption(source, num_frames, on_progress, cancel)

    def _caption(self, source, num_frames, on_progress, cancel) -> CaptionResult:
        k = int(num_frames or self.caption_frames)
        if k < 1:
            raise InvalidSettingsError(f"Caption frames must be at least 1 (got {k}).")
        started = time.perf_counter()
        loaded = self.load_video(source)
        sampled = video.sample_frames(loaded.path, k, max_side=CAPTION_MAX_SIDE)
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
        **overrides: Any,
    ) -> RunResult:
        """Generate a video from ``prompt`` (text or a ``Caption``) and save it as a new run.

        ``settings`` (or the pipeline's defaults) with ``overrides`` applied; the seed actually used
        is in the result and in run.json. Nothing is loaded again that is already resident.
        """
        with self._exclusive():
            return self._generate(prompt, settings, source, caption, on_progress, cancel, overrides)

    def _generate(self, prompt, settings, source, caption, on_progress, cancel, overrides) -> RunResult:
        if isinstance(prompt, Caption):
            caption, prompt = prompt, prompt.text
        base = settings or self.settings
        if prompt is not None:
            overrides["prompt"] = prompt
        checked, notices = base.replace(**overrides).checked()
        if checked.follows_input and source is None:
            raise InvalidSettingsError(
                f"strength {checked.strength:g} follows an input video, but none was given: pass one "
                "(source=... in Python, vid2vid run VIDEO on the command line, or load a video in the panel), "
                "or set strength to 1 to make the video from the words alone."
            )
        started = time.perf_counter()
        self._load_with_progress(self.generator, on_progress, cancel)
        loaded_at = time.perf_counter()
        follow: Optional[Dict[str, Any]] = None
        generate_kwargs: Dict[str, Any] = {}
        if checked.follows_input:
            loaded = self.load_video(source)
            source = loaded
            if not _size_was_chosen(base, overrides):
                checked = checked.replace(**self.size_for_input(loaded))
                notices = [*notices, f"size {checked.width}x{checked.height} follows the input's aspect ratio "
                                     f"({loaded.info.width}x{loaded.info.height}); set a size to choose another."]
            generate_kwargs["init_frames"], follow = self._input_window(loaded, checked)
            notices = [*notices, *follow.pop("notes")]
        prepared_at = time.perf_counter()
        # Backends on GeneratorBase guard themselves with their own advice; this covers any other.
        with out_of_memory_guard(generation_out_of_memory_advice(checked)):
            result = self.generator.generate(checked, on_progress=on_progress, cancel=cancel, **generate_kwargs)
        generated_at = time.perf_counter()
        notes = list(dict.fromkeys([*notices, *result.notes]))  # keep order, drop repeats
        run_dir = self.store.new_run_dir(result.settings.prompt)
        try:
            encode = StepReporter("encode", 1, on_progress, None)
            video.encode_mp4(result.frames, result.settings.fps, run_dir / OUTPUT_FILE)
            encode.step()
            encoded_at = time.perf_counter()
            timings = {"load_generator": loaded_at - started, **{f"generate.{k}": v for k, v in result.timings.items()},
                       "generate": generated_at - prepared_at, "encode": encoded_at - generated_at}
            if follow is not None:
                timings["prepare_input"] = prepared_at - loaded_at
            timings["total"] = time.perf_counter() - started
            record = self.store.save_run(run_dir, {
                "settings": result.settings.to_dict(),
                "caption": caption.to_dict() if caption is not None else None,
                "input": self._input_reference(source),
                "follow": follow,
                "notes": notes,
                "models": {"generator": result.model or self.generator.describe(),
                           "captioner": self.captioner.describe() if caption is not None else None},
                "timings": timings,
                "frames_shape": list(result.frames.shape),
            })
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
        default = GenerationSettings()
        width, height = size_for_aspect(info.width / info.height, default.width * default.height, unit)
        return {"width": width, "height": height}

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
        **overrides: Any,
    ) -> RunResult:
        """Caption ``source`` then generate from the caption (or from ``prompt`` when given)."""
        with self._exclusive():
            captioned = self._caption(source, num_caption_frames, on_progress, cancel)
            text = prompt if prompt is not None else captioned.caption.text
            return self._generate(text, settings, captioned.video, captioned.caption, on_progress, cancel, overrides)

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
        with self._exclusive():
            return self._generate(
                None, settings, source if source and Path(source).exists() else None,
                Caption(**caption) if caption else None, None, None, overrides,
            )

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


def _size_was_chosen(base: GenerationSettings, overrides: Dict[str, Any]) -> bool:
    """Did the person choose the output size (here or in the pipeline's defaults)? Else follow the input's."""
    default = GenerationSettings()
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


__all__ = ["Vid2VidPipeline", "LoadedVideo", "CaptionResult", "RunResult", "models_from_environment",
           "split_options", "DEFAULT_CAPTION_FRAMES", "DEFAULT_OUTPUT_DIR", "PIPELINE_OPTIONS"]
