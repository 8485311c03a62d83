"""Every error this package raises on purpose.

Each message says what happened *and what to do next*: these errors are shown to people (in the
panel, on the command line), so they must read well without a traceback.
"""

from __future__ import annotations


class Vid2VidError(Exception):
    """Base class of every error vid2vid-widgets raises on purpose.

    Catch this one to show a readable message instead of a traceback.
    """


class InvalidVideoError(Vid2VidError):
    """The input is not a video we can read (not a video, no video stream, no frames, truncated)."""


class ModelLoadError(Vid2VidError):
    """Weights could not be loaded (not cached and no network, missing files, wrong folder)."""


class MissingDependencyError(Vid2VidError):
    """An optional package is needed for the chosen feature; the message names the pip command."""


class InvalidSettingsError(Vid2VidError):
    """A generation or caption setting is out of range (frames 0, steps 0, an empty prompt, ...)."""


class GenerationCancelled(Vid2VidError):
    """The person pressed Cancel; the run stopped at a step boundary and produced no result."""


class GPUOutOfMemoryError(Vid2VidError):
    """CUDA ran out of memory; the cache was freed and the models stay loaded."""


class OutputNotWritableError(Vid2VidError):
    """The output folder cannot be written (permissions, disk full)."""


class BusyError(Vid2VidError):
    """Another run is already in progress in this pipeline; one run at a time."""


__all__ = [
    "Vid2VidError",
    "InvalidVideoError",
    "ModelLoadError",
    "MissingDependencyError",
    "InvalidSettingsError",
    "GenerationCancelled",
    "GPUOutOfMemoryError",
    "OutputNotWritableError",
    "BusyError",
]
