"""vid2vid-widgets: caption a video, edit the words, generate a new video, in a notebook.

    from vid2vid_widgets import Vid2VidPanel
    display(Vid2VidPanel())

The public names load lazily, so ``import vid2vid_widgets`` (and ``%load_ext vid2vid_widgets``)
stays fast and imports neither torch nor the model libraries until they are needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Vid2VidPanel": "vid2vid_widgets.panel",
    "Vid2VidPipeline": "vid2vid_widgets.pipeline",
    "RunResult": "vid2vid_widgets.pipeline",
    "CaptionResult": "vid2vid_widgets.pipeline",
    "GenerationSettings": "vid2vid_widgets.generation.base",
    "Caption": "vid2vid_widgets.captioning",
    "BlipCaptioner": "vid2vid_widgets.captioning",
    "RunStore": "vid2vid_widgets.runs",
    "CancelToken": "vid2vid_widgets.progress",
    "Progress": "vid2vid_widgets.progress",
    "Preview": "vid2vid_widgets.progress",
    "unload": "vid2vid_widgets.models",
    "Vid2VidError": "vid2vid_widgets.errors",
    "InvalidVideoError": "vid2vid_widgets.errors",
    "ModelLoadError": "vid2vid_widgets.errors",
    "MissingDependencyError": "vid2vid_widgets.errors",
    "InvalidSettingsError": "vid2vid_widgets.errors",
    "GenerationCancelled": "vid2vid_widgets.errors",
    "GPUOutOfMemoryError": "vid2vid_widgets.errors",
    "OutputNotWritableError": "vid2vid_widgets.errors",
    "BusyError": "vid2vid_widgets.errors",
}

__all__ = sorted(_EXPORTS) + ["load_ipython_extension", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # cache: later look-ups skip this function
        return value
    raise AttributeError(f"module 'vid2vid_widgets' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext vid2vid_widgets``: registers the ``%vid2vid`` magic (harmless twice)."""
    from .magics import load_ipython_extension as load

    load(ipython)
