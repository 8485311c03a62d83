"""SmolVLM2 captioner: the sampled frames go in as ONE video, one sentence for a text-to-video model comes out.

BLIP looks at one still at a time and the consensus picks one still's caption; SmolVLM2
(``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``, Apache-2.0; the 256M variant is the fast choice) is a
small video-language model that watches the frames together, so its sentence can say what happens.

It gets the frames ``video.sample_frames`` already chose, never the file: they are passed to the
processor as one video together with their real timestamps (the processor writes "Frame from 00:03"
before each frame, as it does for a video it decodes itself), through the checkpoint's own chat
template. The answer is cut to its first sentence and cleaned of chat artefacts ("Assistant:").

``Caption.per_frame`` stays empty: the model describes the frames together, and a caption per frame
would cost one more ``generate`` per frame (BLIP does that better and cheaper). ``timestamps`` say
which frames it saw.

fp16 on CUDA (a T4 has no bfloat16, the dtype of the model card): after loading, one forward pass on
a small probe video checks that the logits are finite; if they are not, the model runs in fp32 with
a note (in ``describe()`` and as a warning). The whole model, not only the vision tower:
``SmolVLMModel`` casts pixel values and image features to ``model.dtype``, which is the vision
tower's (its first parameters), so a model with an fp32 tower and fp16 text fails in
``masked_scatter``; fp32 costs about 2 GB for the 500M model, which a T4 has.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import downloads
from ._compat import from_pretrained_with_dtype, torch_dtype
from .captioning import (Caption, CaptionerBase, _cached_commit_hash, _check_frame, _load_error_message, _load_errors,
                         checked_frames)
from .errors import InvalidSettingsError, MissingDependencyError, ModelLoadError
from .models import REGISTRY
from .oom import out_of_memory_advice, out_of_memory_guard
from .progress import CancelToken, Progress, ProgressCallback

DEFAULT_SMOLVLM_MODEL = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
FAST_SMOLVLM_MODEL = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
# Short and concrete: what a text-to-video model needs, in the order its prompts usually have.
DEFAULT_QUESTION = ("Describe this video in one sentence for a text-to-video model: "
                    "the subject, the action, the setting.")
FP16_NOTE = ("SmolVLM2 gave non-finite logits in float16 on this GPU; it runs in float32 instead "
             "(about twice the memory, still well within a T4).")


@dataclass
class SmolVLMLoaded:
    """What the registry keeps for one SmolVLM2 model."""

    model: Any
    processor: Any
    dtype: str  # the dtype it really runs in (float32 after the fp16 fallback)
    notes: List[str] = field(default_factory=list)


# -- text ----------------------------------------------------------------------------------------

_ROLE_PREFIX = re.compile(r"^\s*(?:(?:assistant|user|system)\s*:\s*)+", re.IGNORECASE)
_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(?=\s|$)")


def one_sentence(text: str) -> str:
    """The model's answer -> one clean sentence.

    Drops what a chat model may echo (everything up to the last "Assistant:", role prefixes, the
    end-of-utterance token, surrounding quotes), keeps the first sentence, collapses whitespace and
    capitalises the first letter: ``"Assistant: a man rides a bike. Then he..."`` -> ``"A man rides a bike."``.
    """
    text = str(text).replace("<end_of_utterance>", " ")
    if re.search(r"assistant\s*:", text, re.IGNORECASE):
        text = re.split(r"assistant\s*:", text, flags=re.IGNORECASE)[-1]
    text = " ".join(_ROLE_PREFIX.sub("", text).split()).strip("\"'\u201c\u201d ")
    match = _FIRST_SENTENCE.match(text)
    if match:
        text = match.group(1)
    return text[:1].upper() + text[1:]


# -- loading ---------------------------------------------------------------------------------------


def _model_class() -> Any:
    try:
        from transformers import SmolVLMForConditionalGeneration
    except ImportError as err:
        import transformers

        raise MissingDependencyError(
            f"The SmolVLM2 captioner needs a newer transformers (installed: {transformers.__version__}): "
            "pip install -U 'transformers>=5'. The BLIP captioner works with this one."
        ) from err
    return SmolVLMForConditionalGeneration


def _load_smolvlm(model_id: str, revision: Optional[str], device: str, dtype: str) -> SmolVLMLoaded:
    from transformers import AutoProcessor

    model_class = _model_class()
    try:
        source = downloads.fetch(model_id, revision=revision)
        processor = AutoProcessor.from_pretrained(source, revision=revision, trust_remote_code=False)
        model = from_pretrained_with_dtype(model_class, source, revision=revision, dtype=torch_dtype(dtype))
    except ImportError as err:  # the processor needs num2words for its frame count ("eight frames")
        raise MissingDependencyError(f"The SmolVLM2 processor needs a package: {err} (pip install num2words).") from err
    except _load_errors() as exc:
        raise ModelLoadError(_load_error_message(model_id, revision, exc, kind="a SmolVLM2 model",
                                                 example=DEFAULT_SMOLVLM_MODEL)) from exc
    model = model.to(device).eval()
    loaded = SmolVLMLoaded(model, processor, dtype)
    if dtype == "float16" and not logits_are_finite(model, processor):
        loaded.model, loaded.dtype = model.float(), "float32"
        loaded.notes.append(FP16_NOTE)
        warnings.warn(FP16_NOTE, stacklevel=2)
    return loaded


def _probe_frames() -> np.ndarray:
    """Two small frames with edges and colour: enough to drive every layer through a real forward."""
    ramp = np.linspace(0, 255, 64, dtype=np.float32)
    frame = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, ramp[::-1]) / 2,
                      np.full((64, 64), 128.0)], axis=-1).astype(np.uint8)
    return np.stack([frame, frame[::-1]])


def logits_are_finite(model: Any, processor: Any) -> bool:
    """One forward pass on a probe video in the model's own dtype: are all logits finite?

    fp16 overflow (activations past 65504) shows up as inf/NaN logits, and then as empty or garbage
    captions; bfloat16 would not overflow, but a T4 has none.
    """
    import torch

    frames = _probe_frames()
    inputs = _model_inputs(model, processor, frames, [0.0, 1.0], DEFAULT_QUESTION)
    with torch.inference_mode():
        logits = model(**inputs).logits
    return bool(torch.isfinite(logits).all())


def _model_inputs(model: Any, processor: Any, frames: np.ndarray, timestamps: Sequence[float], question: str):
    """The processor's tensors for one video and the question, on the model's device and dtype."""
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    # The frames' real times: frame i was at frames_indices[i] / fps seconds.
    metadata = {"fps": 1.0, "frames_indices": [float(t) for t in timestamps], "total_num_frames": len(frames),
                "duration": float(max(timestamps)) if len(timestamps) else None}
    # Nested per sample ([[video]]): transformers 5.15 counts the videos of each sample this way,
    # later versions accept it too.
    inputs = processor(text=[prompt], videos=[[frames]], video_metadata=[metadata], return_tensors="pt")
    dtype = next(model.parameters()).dtype
    return {k: (v.to(model.device, dtype=dtype) if v.is_floating_point() else v.to(model.device))
            for k, v in inputs.items()}


# -- the captioner -----------------------------------------------------------------------------------


class SmolVLMCaptioner(CaptionerBase):
    """Caption a video's sampled frames with SmolVLM2, all of them as one video: one sentence.

    ``model_id``: ``DEFAULT_SMOLVLM_MODEL`` (500M), ``FAST_SMOLVLM_MODEL`` (256M), another SmolVLM2 id
    or a local folder. ``device``/``dtype`` "auto": CUDA in float16 when a GPU is present (with the
    finite-logits check), else CPU in float32. Greedy decoding (deterministic), at most
    ``max_new_tokens`` tokens, ``repetition_penalty`` against loops; ``question`` is what it is asked.
    Same interface as ``captioning.BlipCaptioner``; loads lazily through ``models.REGISTRY``.
    """

    label = "SmolVLM2"
    default_model = DEFAULT_SMOLVLM_MODEL

    def __init__(
        self,
        model_id: str = DEFAULT_SMOLVLM_MODEL,
        *,
        revision: Optional[str] = None,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 60,
        repetition_penalty: float = 1.2,
        question: str = DEFAULT_QUESTION,
    ) -> None:
        super().__init__(model_id, revision, device, dtype)
        if max_new_tokens < 1 or repetition_penalty <= 0:
            raise InvalidSettingsError(
                f"max_new_tokens must be at least 1 and repetition_penalty above 0 (1.0 means off); got "
                f"{max_new_tokens} and {repetition_penalty}."
            )
        if not str(question).strip():
            raise InvalidSettingsError("The question for SmolVLM2 is empty: say what the caption should describe.")
        self.max_new_tokens = int(max_new_tokens)
        self.repetition_penalty = float(repetition_penalty)
        self.question = str(question)

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> SmolVLMLoaded:
        """Load (or fetch the resident) model and processor. Raises ``ModelLoadError`` with advice."""
        return REGISTRY.get(self.key, lambda: _load_smolvlm(self.model_id, self.revision, self.device, self.dtype))

    def generate_kwargs(self) -> Dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty,
                "do_sample": False, "num_beams": 1}

    def describe(self) -> Dict[str, Any]:
        """What produced a caption, for run.json."""
        info: Dict[str, Any] = {"role": self.role, "label": self.label, "model_id": self.model_id,
                                "revision": self.revision, "device": self.device, "dtype": self.dtype,
                                "max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty,
                                "question": self.question}
        if self.loaded:
            loaded = self.load()
            info.update(revision=_cached_commit_hash(self.model_id, self.revision) or self.revision,
                        dtype=loaded.dtype, notes=list(loaded.notes))
        return info

    # -- the three stages ------------------------------------------------------------------------
    def preprocess(self, frames: Sequence[np.ndarray], timestamps: Sequence[float]) -> Dict[str, Any]:
        """RGB uint8 frames (one video, resized to the first frame's size) -> the model's tensors."""
        checked = [_check_frame(frame, i) for i, frame in enumerate(frames)]
        height, width = checked[0].shape[:2]
        if any(f.shape[:2] != (height, width) for f in checked):
            from PIL import Image

            checked = [f if f.shape[:2] == (height, width) else
                       np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in checked]
        loaded = self.load()
        return _model_inputs(loaded.model, loaded.processor, np.stack(checked), timestamps, self.question)

    def forward(self, inputs: Dict[str, Any], cancel: Optional[CancelToken] = None) -> Any:
        """One ``generate`` for the whole video, stoppable between tokens. CUDA out-of-memory becomes advice."""
        import torch

        model = self.load().model
        frames = int(inputs["pixel_values"].shape[1])
        advice = out_of_memory_advice(f"captioning {frames} frames as one video", ["the caption frames"],
                                      f"now {frames}", ["use the 256M model (FAST_SMOLVLM_MODEL)", "free GPU memory"])
        kwargs = self.generate_kwargs()
        if cancel is not None:
            kwargs["stopping_criteria"] = _cancel_criteria(cancel)
        with out_of_memory_guard(advice), torch.inference_mode():
            output = model.generate(**inputs, **kwargs)
        return output[:, inputs["input_ids"].shape[1]:]  # only the answer, not the prompt

    def postprocess(self, token_ids: Any) -> str:
        processor = self.load().processor
        return one_sentence(processor.batch_decode(token_ids, skip_special_tokens=True)[0])

    def caption_frames(
        self,
        frames: Sequence[np.ndarray],
        timestamps: Optional[Sequence[float]] = None,
        *,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Caption:
        """One sentence for all ``frames`` seen as one video.

        ``timestamps`` (seconds) tell the model when each frame was; without them the frames are taken
        as one second apart. Progress: stage "caption", 0/1 before and 1/1 after. ``cancel`` is checked
        before generating and between generated tokens.
        """
        frames, stamps = checked_frames(frames, timestamps)
        started = time.perf_counter()
        if on_progress is not None:
            on_progress(Progress("caption", 0, 1, 0.0))
        inputs = self.preprocess(frames, stamps or [float(i) for i in range(len(frames))])
        if cancel is not None:
            cancel.raise_if_cancelled()
        text = self.postprocess(self.forward(inputs, cancel))
        if on_progress is not None:
            on_progress(Progress("caption", 1, 1, time.perf_counter() - started))
        return Caption(text=text, per_frame=[], timestamps=stamps)

    def __repr__(self) -> str:
        return f"SmolVLMCaptioner({self.model_id!r}, device={self.device!r}, dtype={self.dtype!r})"


def _cancel_criteria(cancel: CancelToken) -> Any:
    """A stopping criterion that raises ``GenerationCancelled`` between tokens once Cancel is pressed."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            cancel.raise_if_cancelled()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancel()])


__all__ = ["SmolVLMCaptioner", "DEFAULT_SMOLVLM_MODEL", "FAST_SMOLVLM_MODEL", "DEFAULT_QUESTION", "one_sentence",
           "logits_are_finite"]
