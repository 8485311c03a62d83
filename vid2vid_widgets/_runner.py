"""Where the panel's work runs: inside the click handler (Colab) or in one worker thread.

Colab renders widget updates sent while a click handler runs, but not those sent from a background
thread; JupyterLab, Notebook 7 and VS Code render both. A worker thread keeps the kernel free to
receive the Cancel click, so it is used wherever it renders. One job at a time either way.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from ._compat import in_colab


class Runner:
    """Runs one job at a time, inline or in a daemon thread.

    Args:
        threaded: True for a worker thread, False to run inside the caller (Colab); None decides
            by ``in_colab()``.
    """

    def __init__(self, threaded: Optional[bool] = None) -> None:
        self.threaded = (not in_colab()) if threaded is None else bool(threaded)
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._running = False
        self._ended_at = float("-inf")  # time.monotonic() when the last job ended

    @property
    def busy(self) -> bool:
        return self._running

    def start(self, job: Callable[[], None], name: str = "vid2vid") -> bool:
        """Run ``job`` now (inline) or in a new worker thread; False when a job is already running.

        ``job`` must handle its own exceptions: a worker thread has nowhere to raise them to.
        """
        with self._lock:
            if self._running:
                return False
            self._running = True
        if not self.threaded:
            try:
                job()
            finally:
                self._running = False
                self._ended_at = time.monotonic()
            return True

        def work() -> None:
            try:
                job()
            finally:
                self._running = False

        self._thread = threading.Thread(target=work, name=name, daemon=True)
        self._thread.start()
        return True

    def just_finished(self, within: float = 0.3) -> bool:
        """True right after an inline job ended.

        Inline (Colab), clicks made during a run wait in the kernel's queue and arrive the moment it
        ends; the panel uses this to drop them rather than start a second, unwanted run.
        """
        return not self.threaded and time.monotonic() - self._ended_at < within

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the current job ends (at once when inline); False if ``timeout`` ran out."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()


__all__ = ["Runner"]
