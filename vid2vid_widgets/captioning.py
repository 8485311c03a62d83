"""BLIP captioner: load once, caption k frames in one batch, agree on one caption.

Shaped like a transformers pipeline: ``preprocess`` (frames -> tensors), ``forward``
(``model.generate``, the only step that needs real weights), ``postprocess`` (token ids -> clean
text) and ``consensus_caption`` (per-frame captions -> one caption) are separate, so everything but
the forward is testable without a model. Weights always come through ``models.REGISTRY``: a second
captioner with the same id, revision, device and dtype reuses the resident model.

This module knows nothing about video files: it takes RGB frames and, optionally, their timestamps.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._compat import from_pretrained_with_dtype, hub_errors, resolve_device, torch_dtype
from .errors import InvalidSettingsError, ModelLoadError
from . import downloads
from .models import REGISTRY, ModelKey, is_local_folder
from .oom import out_of_memory_advice, out_of_memory_guard
from .progress import CancelToken, Progress, ProgressCallback

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-base"
LARGE_CAPTION_MODEL = "Salesforce/blip-image-captioning-large"


@dataclass
class Caption:
    """One caption for a whole video, plus the per-frame captions it was chosen from.

    ``text``: the consensus caption (the one the person edits and generates from).
    ``per_frame``: one caption per captioned frame, in frame order (empty from a captioner that
    describes the frames together as one video, such as SmolVLM2).
    ``timestamps``: seconds from the start of the video of each captioned frame; empty when the
    caller did not say where the frames came from.
    """

    text: str
    per_frame: List[str] = field(default_factory=list)
    timestamps: List[float] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready data; ``Caption(**caption.to_dict())`` gives the caption back."""
        return dataclasses.asdict(self)


# -- text helpers (pure functions: no model needed) --------------------------------------------

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")  # letters/digits, keeping "man's" as one word


# BLIP base often starts captions with made-up words ("arafed man riding a bike"), an artefact of
# its training captions; they carry no meaning, so they are dropped.
_BLIP_FILLERS = re.compile(r"\b(?:araf+e?d?|araffe|arafe|arafly)\b\s*", re.IGNORECASE)


def clean_caption(text: str) -> str:
    """Drop BLIP's filler words, collapse whitespace, capitalise the first letter."""
    text = " ".join(_BLIP_FILLERS.sub("", str(text)).split())
    return text[:1].upper() + text[1:]


def _word_set(text: str) -> frozenset:
    return frozenset(_WORD.findall(text.lower()))


def _jaccard(a: frozenset, b: frozenset) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def caption_similarity(captions: Sequence[str]) -> List[List[float]]:
    """The matrix ``consensus_caption`` decides by: word-set Jaccard similarity of every pair of captions
    (lower-cased words; 1 on the diagonal). Shown as a heatmap in the teaching notebook."""
    words = [_word_set(clean_caption(c)) for c in captions]
    return [[_jaccard(a, b) for b in words] for a in words]


def consensus_caption(captions: Sequence[str]) -> str:
    """The per-frame caption that agrees most with all the others, cleaned.

    Method (a medoid under word-set Jaccard similarity): each caption becomes the set of its
    lower-cased words; a caption's score is its mean Jaccard similarity (shared words / all words)
    to every *other* caption; the highest score wins and ties go to the earliest frame. So the
    answer is always one of the real per-frame captions (never a made-up blend of them), and a frame
    that shows something the rest of the video does not (a title card, a cut to black) loses.
    Empty captions only win when every caption is empty. The winner is cleaned with
    ``clean_caption`` (whitespace collapsed, first letter capitalised).
    """
    cleaned = [clean_caption(c) for c in captions]
    if not cleaned:
        return ""
    candidates = [i for i, c in enumerate(cleaned) if c] or list(range(len(cleaned)))
    if len(candidates) == 1:
        return cleaned[candidates[0]]
    similarity = caption_similarity(cleaned)
    best_index, best_score = candidates[0], -1.0
    for i in candidates:
        others = [similarity[i][j] for j in candidates if j != i]
        score = sum(others) / len(others)
        if score > best_score:  # strictly greater: a tie keeps the earlier frame
            best_index, best_score = i, score
    return cleaned[best_index]


# -- loading -----------------------------------------------------------------------------------


def _load_errors() -> Tuple[type, ...]:
    """What a failed ``from_pretrained`` raises: missing files, no network, bad ids, bad revisions."""
    # EnvironmentError is OSError; transformers wraps most failures in it.
    return (OSError,) + hub_errors()


def _load_error_message(model_id: str, revision: Optional[str], exc: BaseException, *,
                        kind: str = "a BLIP captioning model", example: str = DEFAULT_CAPTION_MODEL) -> str:
    """The one "could not load the captioner" message (every captioner uses it); ``kind`` and
    ``example`` name the model family the folder should hold and a hub id that works."""
    what = f"{model_id!r}" + (f" (revision {revision!r})" if revision else "")
    if is_local_folder(model_id) and not os.path.isdir(os.path.expanduser(model_id)):
        return (
            f"Could not load the captioner {what}: the folder does not exist. Pass the folder that "
            f"holds config.json and model.safetensors of {kind}, or a hub id such as "
            f"{example!r}."
        )
    return (
        f"Could not load the captioner {what}: {type(exc).__name__}: {exc}\n"
        "What to do: check the network connection (the weights are downloaded on first use); "
        "if the weights are already downloaded, set HF_HOME to the folder that holds them and "
        "HF_HUB_OFFLINE=1 to use that cache only; or pass the path of a local folder with the model "
        "(saved with save_pretrained) instead of the id. Check the spelling of the id and revision."
    )


def _cached_commit_hash(model_id: str, revision: Optional[str]) -> Optional[str]:
    """The commit the hub cache resolved ``model_id`` to (no network), or None for local folders."""
    if is_local_folder(model_id):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
        from transformers.utils.hub import extract_commit_hash

        path = try_to_load_from_cache(model_id, "config.json", revision=revision)
        return extract_commit_hash(path, None) if isinstance(path, str) else None
    except Exception:  # the commit is a record for run.json, never a reason to fail a caption
        return None


def _load_blip(model_id: str, revision: Optional[str], device: str, dtype: str) -> Tuple[Any, Any]:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    try:
        # Fetched first (visible progress, Cancel, a quick failure offline), then read from the folder.
        source = downloads.fetch(model_id, revision=revision)
        # BLIP is a built-in transformers architecture: remote code is never needed, never trusted.
        processor = BlipProcessor.from_pretrained(source, revision=revision, trust_remote_code=False)
        model = from_pretrained_with_dtype(
            BlipForConditionalGeneration, source, revision=revision, dtype=torch_dtype(dtype)
        )
    except _load_errors() as exc:
        raise ModelLoadError(_load_error_message(model_id, revision, exc)) from exc
    model = model.to(device).eval()
    return model, processor


# -- the captioner -----------------------------------------------------------------------------


class CaptionerBase:
    """What every captioner shares: its registry key, the model-id check, the frame/timestamp checks.

    A captioner adds ``load()``, ``describe()`` and ``caption_frames(frames, timestamps, *,
    on_progress, cancel) -> Caption``; ``label`` is what the panel calls it ("Caption by BLIP (...)").
    """

    role = "captioner"
    label = ""
    default_model = DEFAULT_CAPTION_MODEL  # named in the error for an empty id

    def __init__(self, model_id: str, revision: Optional[str], device: str, dtype: str) -> None:
        if not model_id or not str(model_id).strip():
            raise InvalidSettingsError(f"Give a captioner model id or folder, e.g. {self.default_model!r}.")
        self.model_id = str(model_id)
        self.revision = revision
        # A captioner on a CPU takes seconds, not minutes: the pipeline owns the "CPU is slow" warning.
        self.device, self.dtype = resolve_device(device, dtype, warn=False)

    @property
    def key(self) -> ModelKey:
        return ModelKey(self.role, self.model_id, self.revision, self.device, self.dtype)

    @property
    def loaded(self) -> bool:
        return REGISTRY.is_loaded(self.key)


def checked_frames(frames: Sequence[Any], timestamps: Optional[Sequence[float]]) -> Tuple[List[Any], List[float]]:
    """The frames as a list and the timestamps as floats (empty when not given); refuses what cannot work."""
    frames = list(frames)
    if not frames:
        raise InvalidSettingsError("No frames to caption: give at least one frame (caption frames >= 1).")
    stamps = [float(t) for t in timestamps] if timestamps is not None else []
    if stamps and len(stamps) != len(frames):
        raise InvalidSettingsError(
            f"Got {len(frames)} frames but {len(stamps)} timestamps: give one timestamp per frame."
        )
    return frames, stamps


class BlipCaptioner(CaptionerBase):
    """Caption video frames with BLIP (``Salesforce/blip-image-captioning-base`` by default).

    ``model_id``: a hub id (``LARGE_CAPTION_MODEL`` for the large model) or a local folder.
    ``device``/``dtype``: "auto" means CUDA in float16 when a GPU is present, else CPU in float32.
    Decoding: beam search (``num_beams``), at most ``max_new_tokens`` tokens, and two guards against
    BLIP's habit of repeating words ("a man a man a man"): ``repetition_penalty`` and
    ``no_repeat_ngram_size``.

    Loading is lazy (first ``caption_frames`` or an explicit ``load()``) and goes through the
    process-wide registry, so the model loads once per Python process.
    """

    label = "BLIP"

    def __init__(
        self,
        model_id: str = DEFAULT_CAPTION_MODEL,
        *,
        revision: Optional[str] = None,
        device: str = "auto",
        dtype: str = "auto",
        num_beams: int = 3,
        max_new_tokens: int = 30,
        repetition_penalty: float = 1.5,
        no_repeat_ngram_size: int = 3,
    ) -> None:
        super().__init__(model_id, revision, device, dtype)
        if num_beams < 1 or max_new_tokens < 1:
            raise InvalidSettingsError(
                f"num_beams and max_new_tokens must be at least 1 (got {num_beams} and {max_new_tokens})."
            )
        if repetition_penalty <= 0 or no_repeat_ngram_size < 0:
            raise InvalidSettingsError(
                "repetition_penalty must be above 0 (1.0 means off) and no_repeat_ngram_size at least 0 "
                f"(0 means off); got {repetition_penalty} and {no_repeat_ngram_size}."
            )
        self.num_beams = int(num_beams)
        self.max_new_tokens = int(max_new_tokens)
        self.repetition_penalty = float(repetition_penalty)
        self.no_repeat_ngram_size = int(no_repeat_ngram_size)

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> Tuple[Any, Any]:
        """Load (or fetch the resident) model and processor. Raises ``ModelLoadError`` with advice.

        Nothing is cached on the instance: after ``vid2vid_widgets.unload()`` no captioner may keep
        the weights alive (that is how a person frees GPU memory), and the next use loads again.
        """
        return REGISTRY.get(self.key, lambda: _load_blip(self.model_id, self.revision, self.device, self.dtype))

    @property
    def model(self) -> Any:
        return self.load()[0]

    @property
    def processor(self) -> Any:
        return self.load()[1]

    def generate_kwargs(self) -> Dict[str, Any]:
        """The decoding settings passed to ``model.generate`` (also recorded in run.json)."""
        return {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "do_sample": False,  # beam search, deterministic: the same frames give the same caption
        }

    def describe(self) -> Dict[str, Any]:
        """What produced a caption, for run.json: model, resolved revision, device, decoding settings."""
        revision = _cached_commit_hash(self.model_id, self.revision) if self.loaded else None
        return {
            "role": self.role,
            "model_id": self.model_id,
            "revision": revision or self.revision,
            "device": self.device,
            "dtype": self.dtype,
            **{k: v for k, v in self.generate_kwargs().items() if k != "do_sample"},
        }

    # -- the three stages ------------------------------------------------------------------------
    def preprocess(self, frames: Sequence[np.ndarray]) -> Dict[str, Any]:
        """RGB uint8 frames (H, W, 3), any sizes, -> one batch of pixel values on the model's device."""
        checked = [_check_frame(frame, i) for i, frame in enumerate(frames)]
        model, processor = self.load()
        inputs = processor(images=checked, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, dtype=torch_dtype(self.dtype))
        return {"pixel_values": pixel_values}

    def forward(self, inputs: Dict[str, Any]) -> Any:
        """One ``model.generate`` call for the whole batch. Turns CUDA out-of-memory into advice."""
        import torch

        model = self.load()[0]
        batch_size = int(inputs["pixel_values"].shape[0])
        advice = out_of_memory_advice(f"captioning {batch_size} frames at once", ["the caption frames"],
                                      f"now {batch_size}", ["free GPU memory"])
        with out_of_memory_guard(advice), torch.inference_mode():
            return model.generate(**inputs, **self.generate_kwargs())

    def postprocess(self, token_ids: Any) -> List[str]:
        """Token ids -> one clean caption per frame (special tokens dropped, whitespace collapsed)."""
        processor = self.load()[1]
        texts = processor.batch_decode(token_ids, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]

    # -- the whole thing -------------------------------------------------------------------------
    def caption_frames(
        self,
        frames: Sequence[np.ndarray],
        timestamps: Optional[Sequence[float]] = None,
        *,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Caption:
        """Caption all frames in one batch and agree on one caption (see ``consensus_caption``).

        Progress: stage "caption", 0/1 before the batch runs and 1/1 when it is done. ``cancel`` is
        checked before the forward (the one long step, which cannot be interrupted midway).
        """
        frames, stamps = checked_frames(frames, timestamps)
        started = time.perf_counter()
        if on_progress is not None:
            on_progress(Progress("caption", 0, 1, 0.0))
        inputs = self.preprocess(frames)
        if cancel is not None:
            cancel.raise_if_cancelled()
        token_ids = self.forward(inputs)
        per_frame = self.postprocess(token_ids)
        if on_progress is not None:
            on_progress(Progress("caption", 1, 1, time.perf_counter() - started))
        return Caption(text=consensus_caption(per_frame), per_frame=per_frame, timestamps=stamps)

    def __repr__(self) -> str:
        return f"BlipCaptioner({self.model_id!r}, device={self.device!r}, dtype={self.dtype!r})"


def _check_frame(frame: Any, index: int) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise InvalidSettingsError(
            f"Frame {index} has shape {array.shape}; the captioner needs RGB frames of shape (height, width, 3)."
        )
    if array.dtype != np.uint8:
        # Frames from video.sample_frames are uint8; floats are taken as 0..1 images.
        array = np.clip(array * 255.0 if np.issubdtype(array.dtype, np.floating) else array, 0, 255).astype(np.uint8)
    return array


__all__ = [
    "DEFAULT_CAPTION_MODEL",
    "LARGE_CAPTION_MODEL",
    "Caption",
    "BlipCaptioner",
    "CaptionerBase",
    "checked_frames",
    "consensus_caption",
    "caption_similarity",
    "clean_caption",
]
