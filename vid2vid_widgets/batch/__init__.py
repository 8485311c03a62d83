"""Many videos at once: caption (and generate from) every video of a folder, glob or list.

    from vid2vid_widgets.batch import run_batch
    table = run_batch("clips/", "out/", caption_only=True)

Each input becomes one row of ``OUT/results.parquet`` / ``OUT/results.jsonl`` (status ``ok``,
``error`` with a readable message, or ``skipped`` when an earlier run already did it with the same
input and settings). Rows are recorded as items finish, so a crash or Ctrl-C loses nothing; the same
call again does only what is missing. Two engines: ``local`` (one resident pipeline in a loop, the
next video decoded meanwhile) and ``ray`` (Ray Data actors, each holding a resident model set, on a
laptop or a cluster).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..errors import InvalidSettingsError
from ..generation.base import GenerationSettings
from ..pipeline import models_from_environment, split_options
from ._inputs import BatchItem, discover_inputs, read_list
from ._table import (JSONL_FILE, PARQUET_FILE, BatchLockedError, ResultsTable, as_table, done_rows, ordered)
from ._work import BatchJob, plan_item

PathLike = Union[str, "os.PathLike[str]"]
ENGINES = ("local", "ray")
DEFAULT_BATCH_DIR = "vid2vid-batch"


class _Bar:
    """The batch's tqdm bar: items done, failures, skips, time left (tqdm's own estimate)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.failed = self.skipped = 0
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="videos", unit="video", file=sys.stderr, dynamic_ncols=True)

    def update(self, row: Dict[str, Any]) -> None:
        self.failed += row["status"] == "error"
        self.skipped += row["status"] == "skipped"
        if self.bar is not None:
            self.bar.set_postfix(failed=self.failed, skipped=self.skipped, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _latest_per_input(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per (path, settings), the latest: the table while a run is incomplete."""
    latest: Dict[tuple, Dict[str, Any]] = {}
    for row in rows:
        latest[(row.get("path"), row.get("settings_key"))] = row
    return list(latest.values())


def run_batch(
    inputs: Union[PathLike, Sequence[PathLike]],
    out: PathLike = DEFAULT_BATCH_DIR,
    *,
    caption_only: bool = False,
    prompt_template: Optional[str] = None,
    engine: str = "local",
    ray_address: Optional[str] = None,
    concurrency: Optional[int] = None,
    limit: Optional[int] = None,
    progress: bool = True,
    overlap: bool = True,
    **options: Any,
) -> Any:
    """Caption every video of ``inputs`` (and, unless ``caption_only``, generate a new one from it).

    Args:
        inputs: a folder (all files below it; videos are recognised by content), a glob, a CSV/JSONL
            with a ``path`` column and optional ``prompt``/``seed``/``strength`` per row, or a list.
        out: the batch folder: results table, run folders (``out/runs``), lock.
        caption_only: only caption (no generation).
        prompt_template: the prompt, with ``{caption}`` standing for each video's caption (default:
            the caption itself). A CSV/JSONL row's ``prompt`` replaces it for that row.
        engine: "local" or "ray". ray_address: a running Ray cluster (default: a local Ray).
        concurrency: Ray actors (default: one per GPU, or 1). limit: only the first N inputs.
        progress: a tqdm bar and a summary line. overlap: (local engine) decode the next video while
            the models work on this one.
        **options: ``Vid2VidPipeline.from_options`` arguments (models, backend, generator_model,
            captioner, device, caption_frames) and ``GenerationSettings`` fields (num_steps, seed...).

    Returns:
        The table of this run (one row per input, in input order) as a pandas DataFrame, or a list
        of dicts without pandas. Raises ``BatchLockedError`` when another batch writes to ``out``.
    """
    if engine not in ENGINES:
        raise InvalidSettingsError(f"Unknown engine {engine!r}: choose 'local' or 'ray'.")
    for name, value in (("limit", limit), ("concurrency", concurrency)):
        if value is not None and int(value) < 1:
            raise InvalidSettingsError(f"{name} must be at least 1 (got {value}).")
    if prompt_template is not None and not prompt_template.strip():
        raise InvalidSettingsError("The prompt template is empty: leave it out, or write e.g. '{caption}, in watercolour'.")
    pipeline_options, settings = split_options(dict(options), "batch")
    pipeline_options.pop("output_dir", None)  # run folders always go under out/runs
    pipeline_options["models"] = models_from_environment(pipeline_options.get("models"))
    if not caption_only:
        GenerationSettings(**settings).replace(prompt="x").checked()  # bad settings fail now, not per item
    out_path = Path(os.fspath(out)).expanduser().resolve()
    items = discover_inputs(inputs, exclude=out_path)[: limit or None]
    job = BatchJob(out=str(out_path), caption_only=caption_only, prompt_template=prompt_template,
                   pipeline_options=pipeline_options, settings=settings, engine=engine)
    plans = [plan_item(job, item, i) for i, item in enumerate(items)]

    with ResultsTable(out_path) as table:
        previous = table.previous()
        done = done_rows(previous)
        finished: Dict[int, Dict[str, Any]] = {}
        bar = _Bar(len(plans), progress)

        def record(row: Dict[str, Any]) -> None:
            finished[row["index"]] = row
            table.append(ordered(row), lambda: _latest_per_input(previous + list(finished.values())))
            bar.update(row)

        complete = False
        try:
            if engine == "local":
                from ._local import run_local

                run_local(job, plans, done, record, overlap=overlap)
            else:
                from ._ray import run_ray

                run_ray(job, plans, done, record, concurrency=concurrency, address=ray_address)
            complete = True
        finally:
            bar.close()
            rows = [finished[i] for i in sorted(finished)]
            if complete:
                table.write_final(rows)
            else:  # interrupted: the log keeps every earlier row, so the rerun can still skip them
                table.write_parquet(_latest_per_input(previous + rows))
        if progress:
            print(summary(rows, out_path))
    return as_table(rows)


def summary(rows: List[Dict[str, Any]], out: Path) -> str:
    """One line: how many were done, failed and skipped, and where the table is."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "error", "skipped")}
    where = out / (PARQUET_FILE if (out / PARQUET_FILE).exists() else JSONL_FILE)
    return (f"{counts['ok']} done, {counts['error']} failed, {counts['skipped']} skipped (done before); "
            f"table: {where}")


__all__ = ["run_batch", "summary", "discover_inputs", "read_list", "BatchItem", "BatchJob", "BatchLockedError",
           "ENGINES", "DEFAULT_BATCH_DIR"]
