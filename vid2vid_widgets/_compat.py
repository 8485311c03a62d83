"""Environment facts, each in one cached helper that tests can replace.

Version checks and "where are we running" questions live here and nowhere else.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Any, List, NamedTuple, Sequence, Tuple


@functools.lru_cache(maxsize=None)
def in_colab() -> bool:
    """True inside Google Colab, where widget updates from background threads do not render."""
    if os.environ.get("VID2VID_FORCE_COLAB") == "1":
        return True
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


@functools.lru_cache(maxsize=None)
def ipywidgets_major() -> int:
    import ipywidgets

    return int(ipywidgets.__version__.split(".")[0])


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


CPU_WARNING = (
    "No CUDA GPU found: running on the CPU. The real models take minutes per video here "
    "(about 1 minute per denoising step at 16 frames of 256x256 on 2 cores). For a quick try, "
    "use the tiny random models (models='tiny' / --models tiny) or fewer steps and frames; "
    "on Colab choose Runtime > Change runtime type > T4 GPU."
)


def resolve_device(device: str = "auto", dtype: str = "auto", *, warn: bool = True) -> Tuple[str, str]:
    """Pick ("cuda", "float16") when a GPU is present, else ("cpu", "float32") with a warning.

    fp16 on a CPU is slow or unsupported for many kernels, so "auto" means fp32 there.
    """
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
        if device == "cpu" and warn:
            warnings.warn(CPU_WARNING, stacklevel=3)
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    return device, dtype


def torch_dtype(name: str):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def free_cuda_cache() -> None:
    try:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing memory must never itself fail a run
        pass


# -- ipywidgets 7 / 8 differences used by the panel ----------------------------------------------
# Colab ships ipywidgets 7.7.1; everywhere else has 8. Each difference is answered here, once.


class UploadedFile(NamedTuple):
    """One uploaded file, whatever the ipywidgets version: its name, bytes and MIME type."""

    name: str
    content: bytes
    type: str = ""


def parse_upload_value(value: Any) -> List[UploadedFile]:
    """Read a FileUpload ``value`` in either version's shape.

    v7: a dict ``{name: {"metadata": {"name", "type", "size", "lastModified"}, "content": bytes}}``.
    v8: a tuple of dicts ``{"name", "type", "size", "last_modified", "content": memoryview}``.
    """
    if not value:
        return []
    if isinstance(value, dict):  # v7
        files = []
        for name, entry in value.items():
            metadata = entry.get("metadata") or {}
            files.append(UploadedFile(str(metadata.get("name") or name), bytes(entry["content"]),
                                      str(metadata.get("type") or "")))
        return files
    return [UploadedFile(str(entry["name"]), bytes(entry["content"]), str(entry.get("type") or ""))
            for entry in value]  # v8


def upload_trigger_trait() -> str:
    """The FileUpload trait to observe for "a file arrived".

    v7 rebuilds ``value`` when the browser bumps ``_counter``; observing ``_counter`` also catches
    the same file uploaded twice (an equal ``value`` dict would send no change).
    """
    return "_counter" if ipywidgets_major() < 8 else "value"


def clear_upload(widget: Any) -> None:
    """Drop an upload's bytes from the widget once they are saved (a video can be large).

    v8's ``value`` is settable (clearing it also resets the button's file count); v7's is read-only,
    so its synced ``data``/``metadata`` lists are emptied and ``value`` is reset directly.
    """
    if ipywidgets_major() >= 8:
        widget.value = ()
    else:
        with widget.hold_sync():
            widget.metadata = []
            widget.data = []
        widget.set_trait("value", {})


def set_titles(container: Any, titles: Sequence[str]) -> None:
    """Titles of an Accordion/Tab: v8 has a ``titles`` tuple, v7 only ``set_title(i, title)``."""
    if ipywidgets_major() >= 8:
        container.titles = tuple(titles)
    else:
        for index, title in enumerate(titles):
            container.set_title(index, title)


def get_titles(container: Any) -> List[str]:
    if ipywidgets_major() >= 8:
        return list(container.titles)
    return [container.get_title(i) or "" for i in range(len(container.children))]


# -- transformers 4 / 5 differences ---------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


@functools.lru_cache(maxsize=None)
def motion_unet_repeats_prompt() -> bool:
    """Does diffusers' ``UNetMotionModel`` repeat the prompt embedding once per frame itself?

    Before diffusers 0.31 it did (given one embedding per video); from 0.31 on the pipeline repeats
    it and the UNet expects one per frame.
    """
    import diffusers

    major, minor = (int(part) for part in diffusers.__version__.split(".")[:2])
    return (major, minor) < (0, 31)


def transformers_dtype_kwarg() -> str:
    """The ``from_pretrained`` keyword for the weights' dtype: ``dtype`` from transformers 4.56 on
    (``torch_dtype`` is deprecated there), ``torch_dtype`` before (where ``dtype`` reaches the model's
    ``__init__`` and fails)."""
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def from_pretrained_with_dtype(cls: Any, source: str, *, revision: Any, dtype: Any) -> Any:
    """``cls.from_pretrained(source)`` in ``dtype`` under the keyword this transformers version reads.

    Remote code is never trusted: only stock transformers classes are loaded this way.
    """
    if transformers_dtype_kwarg() == "dtype":
        return cls.from_pretrained(source, revision=revision, dtype=dtype, trust_remote_code=False)
    return cls.from_pretrained(source, revision=revision, torch_dtype=dtype, trust_remote_code=False)


def hub_errors() -> Tuple[type, ...]:
    """huggingface_hub's errors for "not found / offline / bad id", in any version.

    ``huggingface_hub.utils`` exports them in every version from 0.23 to 2.x; ``huggingface_hub.errors``
    only gained ``HfHubHTTPError`` later (0.23 has the module without it).
    """
    try:
        from huggingface_hub import utils as hub_utils
    except ImportError:  # pragma: no cover - huggingface_hub is a hard dependency
        return ()
    names = ("HfHubHTTPError", "HFValidationError", "OfflineModeIsEnabled")
    return tuple(getattr(hub_utils, name) for name in names if hasattr(hub_utils, name))


def bert_tokenizer_fast(vocab: "dict[str, int]", **kwargs: Any):
    """A ``BertTokenizerFast`` with exactly ``vocab`` (used by the tiny test models).

    transformers 5 takes the vocabulary as a dict (``vocab=``) and silently ignores ``vocab_file=``;
    transformers 4 only reads a ``vocab_file`` (a dict there fails with "stat: path should be string").
    """
    from transformers import BertTokenizerFast

    if transformers_major() >= 5:
        tokenizer = BertTokenizerFast(vocab=vocab, **kwargs)
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "vocab.txt")
            with open(path, "w", encoding="utf-8") as handle:
                handle.writelines(token + "\n" for token in sorted(vocab, key=vocab.__getitem__))
            tokenizer = BertTokenizerFast(vocab_file=path, **kwargs)
    if len(tokenizer) != len(vocab):
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, expected {len(vocab)}")
    return tokenizer
