"""One guard for CUDA out-of-memory, used by the captioner, every generator and the pipeline.

A GPU that runs out of memory is a normal event on a 16 GB T4, not a crash: the person lowers a
setting and tries again with the models still loaded. So every stage that can run out wraps its
work in ``out_of_memory_guard(advice)``, which turns ``torch.cuda.OutOfMemoryError`` into a
``GPUOutOfMemoryError`` whose message says what to lower for that stage, and frees the cache.

Why the frames are cleared first: the exception's traceback holds every frame of the failed call,
and those frames hold the big tensors (latents, activations). Emptying the CUDA cache while they are
alive frees nothing, so the guard clears the finished frames of the traceback before freeing.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import Optional, Sequence, Type

from ._compat import free_cuda_cache
from .errors import GPUOutOfMemoryError


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA's out-of-memory error (torch is only asked when it is already imported)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    oom_class = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return oom_class is not None and isinstance(exc, oom_class)


def out_of_memory_advice(what: str, lower: Sequence[str], now: str = "", also: Sequence[str] = ()) -> str:
    """The one wording of every out-of-memory message: what ran out, what to lower, what else helps.

    ``out_of_memory_advice("generating", ["the frames", "the size"], "now 16 frames of 256x256")``
    -> "The GPU ran out of memory while generating. Lower the frames or the size (now 16 frames of
    256x256), then try again. ..."
    """
    advice = f"The GPU ran out of memory while {what}. Lower {_join(lower)}"
    if now:
        advice += f" ({now})"
    if also:
        advice += ", or " + ", or ".join(also)
    return advice + ", then try again. The memory was freed and the models are still loaded."


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


class out_of_memory_guard:  # noqa: N801 - used like a function: ``with out_of_memory_guard(advice):``
    """Context manager: CUDA out-of-memory inside becomes ``GPUOutOfMemoryError(advice)``.

    An inner guard has already translated and freed: its ``GPUOutOfMemoryError`` passes through
    untouched (its advice is the more specific one, and the cache is freed once, not twice).
    """

    def __init__(self, advice: str) -> None:
        self.advice = advice

    def __enter__(self) -> "out_of_memory_guard":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> bool:
        if exc is None or not is_out_of_memory(exc):
            return False
        if tb is not None:
            traceback.clear_frames(tb)  # drop the failed frames' tensors before freeing (module docstring)
        free_cuda_cache()
        raise GPUOutOfMemoryError(self.advice) from exc


__all__ = ["out_of_memory_guard", "out_of_memory_advice", "is_out_of_memory"]
