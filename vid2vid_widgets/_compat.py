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
