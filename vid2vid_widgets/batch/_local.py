"""The local engine: one resident pipeline in a loop, the next video decoded while this one runs.

The overlap is a one-item lookahead on a single background thread: while the models caption (and
generate) item i, the thread digests, probes and samples the caption frames of item i+1. PyAV and
torch both release the GIL in their heavy parts, so the two really run at once.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional

from ._work import BatchJob, prepare, run_models

RowSink = Callable[[Dict[str, Any]], None]


def run_local(job: BatchJob, plans: List[Dict[str, Any]], done: Dict[tuple, Dict[str, Any]], record: RowSink,
              overlap: bool = True) -> None:
    """Work through ``plans`` in order, handing each finished row to ``record`` as soon as it is done."""
    pipeline = job.pipeline()  # models load on the first item that needs them, then stay resident
    k = job.caption_frames

    def prepared(plan: Dict[str, Any]):
        return prepare(plan, done, k)

    if not overlap:
        for plan in plans:
            record(run_models(pipeline, job, *prepared(plan)))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vid2vid-decode") as pool:
        ahead: Optional[Future] = pool.submit(prepared, plans[0]) if plans else None
        for i in range(len(plans)):
            current = ahead.result()
            ahead = pool.submit(prepared, plans[i + 1]) if i + 1 < len(plans) else None
            try:
                record(run_models(pipeline, job, *current))
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                raise


__all__ = ["run_local"]
