"""Progress reports and cancellation, shared by the captioner, the generators and the UIs.

Plain data and a thread-safe flag: the pipeline never imports a UI, and a UI never reaches into a
model loop. A UI passes ``on_progress`` (a callable) and a ``CancelToken``; loops call ``report`` and
``cancel.raise_if_cancelled()`` at each step boundary.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from .errors import GenerationCancelled


@dataclass(frozen=True)
class Progress:
    """One progress report: ``step`` of ``total`` done in ``stage``, ``elapsed`` seconds so far.

    ``already``: units that were done before the clock started (a download's bytes already on disk),
    left out of the speed and the time left.
    """

    stage: str  # "caption", "denoise", "decode", "encode", "load", "download" (step and total in bytes)
    step: int
    total: int
    elapsed: float
    already: int = 0

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)

    @property
    def rate(self) -> Optional[float]:
        """Units per second in this session (bytes per second for a download); None before the first."""
        done_now = self.step - self.already
        if done_now <= 0 or self.elapsed <= 0:
            return None
        return done_now / self.elapsed

    @property
    def remaining(self) -> Optional[float]:
        """Seconds left, extrapolated from the mean step time; None before the first step."""
        if self.step - self.already <= 0 or self.total <= 0:
            return None
        return (self.elapsed / (self.step - self.already)) * max(0, self.total - self.step)


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy images field by field is ambiguous
class Preview:
    """What the video would look like if the run stopped after ``step`` of ``total`` denoising steps.

    ``image``: a small uint8 RGB strip (H, W, 3), a few frames side by side, one row per video of the
    run; ``latent_shape``: the shape of the latents it was made from (videos, channels, frames, h, w).
    """

    step: int
    total: int
    image: Any  # numpy uint8 (H, W, 3)
    latent_shape: Tuple[int, ...] = ()


PreviewCallback = Callable[[Preview], None]


class CancelToken:
    """A flag a UI sets (Cancel button, Ctrl-C) and a loop checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def reset(self) -> None:
        self._event.clear()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise GenerationCancelled("Cancelled: the run stopped before it finished and nothing was saved.")


class StepReporter:
    """Turns 'one more step done' into ``Progress`` reports with elapsed time, and checks cancel.

    Loops call ``reporter.step()`` after each unit of work; ``check()`` before expensive work.
    """

    def __init__(
        self,
        stage: str,
        total: int,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> None:
        self.stage = stage
        self.total = total
        self.on_progress = on_progress
        self.cancel = cancel
        self.done = 0
        self.started = time.perf_counter()

    def check(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.on_progress is not None:
            self.on_progress(Progress(self.stage, self.done, self.total, time.perf_counter() - self.started))
        self.check()


__all__ = ["Progress", "ProgressCallback", "Preview", "PreviewCallback", "CancelToken", "StepReporter"]
