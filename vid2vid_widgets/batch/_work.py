"""One item's work, the same in both engines: plan it, prepare it (CPU), run the models on it.

Rows are plain dicts (JSON-ready) so they travel unchanged between Ray stages and into the table.
``prepare`` does the file work (digest, probe, sampling the caption frames) and never needs a model;
``run_models`` captions and, unless captions only, generates through a ``Vid2VidPipeline``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..captioning import Caption
from ..errors import InvalidVideoError, MissingDependencyError, ModelLoadError, OutputNotWritableError
from ..generation import DEFAULT_BACKEND
from ..generation.base import GenerationSettings
from ..pipeline import LoadedVideo, Vid2VidPipeline, caption_frames_of
from ..runs import file_digest
from ..video import SampledFrames, probe
from ._inputs import BatchItem

CAPTION_PLACEHOLDER = "{caption}"
# Errors that would fail every item the same way: they end the batch with their message instead of
# filling the table with the same error.
FATAL_ERRORS = (ModelLoadError, MissingDependencyError, OutputNotWritableError)


@dataclass(frozen=True)
class BatchJob:
    """What is the same for every item of a batch (picklable: Ray actors are built from it)."""

    out: str
    caption_only: bool = False
    prompt_template: Optional[str] = None  # "{caption}, in watercolour"; None: the caption itself
    pipeline_options: Dict[str, Any] = field(default_factory=dict)  # Vid2VidPipeline.from_options arguments
    settings: Dict[str, Any] = field(default_factory=dict)  # GenerationSettings fields
    engine: str = "local"

    @property
    def caption_frames(self) -> int:
        from ..pipeline import DEFAULT_CAPTION_FRAMES

        return int(self.pipeline_options.get("caption_frames") or DEFAULT_CAPTION_FRAMES)

    def pipeline(self) -> Vid2VidPipeline:
        """The resident pipeline of one engine or actor; run folders go under ``out``."""
        return Vid2VidPipeline.from_options(**{**self.pipeline_options, "output_dir": self.out}, **self.settings)


def plan_item(job: BatchJob, item: BatchItem, index: int) -> Dict[str, Any]:
    """The row an item starts as: its path, effective settings and the key a rerun looks it up by."""
    overrides = {k: v for k, v in (("seed", item.seed), ("strength", item.strength)) if v is not None}
    prompt = item.prompt or job.prompt_template or CAPTION_PLACEHOLDER
    # Defaults spelled out, so the command line (which passes every default) and Python (which
    # passes only what was chosen) give the same key for the same work.
    options = job.pipeline_options
    models = {"models": options.get("models"), "captioner": options.get("captioner"),
              "caption_frames": job.caption_frames}
    if job.caption_only:
        identity: Dict[str, Any] = {"caption_only": True, **models}
        settings: Dict[str, Any] = {"caption_frames": job.caption_frames}
    else:
        settings = GenerationSettings(**{**job.settings, **overrides}).replace(prompt=prompt).to_dict()
        models.update(backend=options.get("backend") or DEFAULT_BACKEND, generator_model=options.get("generator_model"))
        identity = {"settings": settings, **models}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"index": index, "path": item.path, "name": Path(item.path).name, "status": None,
            "problem": item.problem, "prompt": None if job.caption_only else prompt,
            "seed": settings.get("seed"), "settings": json.dumps(settings), "settings_key": key,
            "engine": job.engine}


def _error(row: Dict[str, Any], exc: BaseException) -> Dict[str, Any]:
    return {**row, "status": "error", "error_type": type(exc).__name__, "message": str(exc) or repr(exc)}


def _finished(row: Dict[str, Any]) -> Dict[str, Any]:
    seconds = [row.get(k) or 0.0 for k in ("seconds_prepare", "seconds_caption", "seconds_generate")]
    return {**row, "seconds_total": round(sum(seconds), 4),
            "finished_at": _dt.datetime.now().isoformat(timespec="seconds")}


_KEPT_WHEN_SKIPPED = ("caption", "per_frame_captions", "caption_times", "prompt", "seed", "run_dir",
                      "output_path", "settings")


def prepare(row: Dict[str, Any], done: Dict[tuple, Dict[str, Any]], caption_frames: int
            ) -> Tuple[Dict[str, Any], Optional[LoadedVideo], Optional[SampledFrames]]:
    """The file work of one item: digest, resume check, probe, caption frames. No model involved.

    Returns the row (finished when it is an error or was done before) and, for an item to run, the
    probed video and its sampled frames.
    """
    started = time.perf_counter()
    row = dict(row)
    if row.get("problem"):
        return _finished({**row, "status": "error", "error_type": "InvalidSettingsError", "message": row["problem"]}), None, None
    try:
        row["input_digest"] = _digest(row["path"])
        earlier = done.get((row["input_digest"], row["settings_key"]))
        if earlier is not None:
            kept = {k: earlier.get(k) for k in _KEPT_WHEN_SKIPPED}
            return _finished({**row, **kept, "status": "skipped",
                              "message": "done in an earlier run with the same input and settings"}), None, None
        info = probe(row["path"])
        loaded = LoadedVideo(path=Path(row["path"]), info=info, name=row["name"])
        sampled = caption_frames_of(loaded, caption_frames)
    except Exception as exc:  # a bad file is a row with its reason, never the end of the batch
        return _finished({**_error(row, exc), "seconds_prepare": time.perf_counter() - started}), None, None
    row["seconds_prepare"] = round(time.perf_counter() - started, 4)
    return row, loaded, sampled


def _digest(path: str) -> str:
    try:
        return file_digest(path)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise InvalidVideoError(f"Cannot read {path} ({reason}): check the path (a list's paths are relative to "
                                "the list file's folder) and that the file is readable.") from exc


def caption_step(pipeline: Vid2VidPipeline, row: Dict[str, Any], loaded: LoadedVideo, sampled: SampledFrames
                 ) -> Dict[str, Any]:
    """Caption a prepared item (the frames are already sampled)."""
    started = time.perf_counter()
    result = pipeline.caption(loaded, num_frames=len(sampled.frames) or None, sampled=sampled)
    caption = result.caption
    return {**row, "caption": caption.text, "per_frame_captions": list(caption.per_frame),
            "caption_times": [round(t, 4) for t in caption.timestamps],
            "seconds_caption": round(time.perf_counter() - started, 4)}


def generate_step(pipeline: Vid2VidPipeline, row: Dict[str, Any], loaded: LoadedVideo) -> Dict[str, Any]:
    """Generate from a captioned item's prompt ("{caption}" filled in) and record its run folder."""
    started = time.perf_counter()
    settings = GenerationSettings.from_dict(json.loads(row["settings"]))
    prompt = (row.get("prompt") or CAPTION_PLACEHOLDER).replace(CAPTION_PLACEHOLDER, row["caption"])
    caption = Caption(row["caption"], list(row["per_frame_captions"]), list(row["caption_times"]))
    result = pipeline.generate(prompt, settings.replace(prompt=prompt), source=loaded, caption=caption)
    return {**row, "prompt": result.settings.prompt, "seed": result.seed, "run_dir": str(result.run_dir),
            "output_path": str(result.video_path), "settings": json.dumps(result.settings.to_dict()),
            "seconds_generate": round(time.perf_counter() - started, 4)}


def run_models(pipeline: Vid2VidPipeline, job: BatchJob, row: Dict[str, Any], loaded: Optional[LoadedVideo],
               sampled: Optional[SampledFrames]) -> Dict[str, Any]:
    """Caption (and generate) a prepared item; a failure becomes the item's error row."""
    if row.get("status") is not None or loaded is None or sampled is None:
        return row  # finished while preparing: an error or done before
    try:
        row = caption_step(pipeline, row, loaded, sampled)
        if not job.caption_only:
            row = generate_step(pipeline, row, loaded)
    except FATAL_ERRORS:
        raise
    except Exception as exc:
        return _finished(_error(row, exc))
    return _finished({**row, "status": "ok", "error_type": None, "message": None})


__all__ = ["BatchJob", "plan_item", "prepare", "caption_step", "generate_step", "run_models", "FATAL_ERRORS"]
