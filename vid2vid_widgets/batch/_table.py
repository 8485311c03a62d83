"""The results table of a batch: ``OUT/results.jsonl`` and ``OUT/results.parquet``, and the lock.

Durability: every finished item is appended to results.jsonl as one line, flushed and fsynced
before the next item is reported, so a crash (even SIGKILL) loses at most the item in flight, and a
torn last line is ignored on reading. The parquet file is rebuilt from the rows now and then and at
the end, written to a temporary file and renamed into place, so a reader never sees half of one.

At the end of a run both files hold that run's table: one row per input, in input order.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

from ..errors import Vid2VidError
from ..runs import _not_writable

JSONL_FILE = "results.jsonl"
PARQUET_FILE = "results.parquet"
LOCK_FILE = ".lock"
DONE = ("ok", "skipped")  # statuses whose outputs exist: a rerun does not redo them
# Column order of the table (rows may lack some: an error row has no caption).
COLUMNS = ("path", "name", "status", "error_type", "message", "input_digest", "caption", "per_frame_captions",
           "caption_times", "prompt", "seed", "run_dir", "output_path", "settings", "settings_key",
           "seconds_prepare", "seconds_caption", "seconds_generate", "seconds_total", "engine", "finished_at")


class BatchLockedError(Vid2VidError):
    """Another batch is writing to the same output folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class BatchLock:
    """``OUT/.lock``, created with O_EXCL: one batch per output folder at a time.

    A lock left by a batch that died (its pid no longer runs on this host) is stale and taken over,
    so a rerun after a crash or SIGKILL needs no manual clean-up.
    """

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK_FILE
        self.held = False

    def acquire(self) -> None:
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": _dt.datetime.now().isoformat(timespec="seconds")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._remove_if_stale():
                    continue
                raise BatchLockedError(self._busy_message()) from None
            except OSError as exc:
                raise _not_writable(self.path.parent, exc) from exc
            with os.fdopen(fd, "w") as handle:
                json.dump(owner, handle)
            self.held = True
            return
        raise BatchLockedError(self._busy_message())

    def _owner(self) -> Dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _remove_if_stale(self) -> bool:
        owner = self._owner()
        if not owner:
            # Written between O_EXCL and the dump, or emptied by a crash: young means a live writer.
            try:
                if time.time() - self.path.stat().st_mtime < 10:
                    return False
            except FileNotFoundError:
                return True
        elif owner.get("host") != socket.gethostname() or _pid_alive(int(owner.get("pid", -1))):
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        return True

    def _busy_message(self) -> str:
        owner = self._owner()
        who = f"process {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}" if owner else "another process"
        return (f"Another batch is already writing to {self.path.parent} ({who}). Wait for it to finish, or give "
                f"this batch another output folder (-o). If no batch is running there, delete {self.path}.")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def read_rows(out: Path) -> List[Dict[str, Any]]:
    """Every row recorded in ``OUT/results.jsonl`` (a torn last line from a crash is skipped)."""
    path = Path(out) / JSONL_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def done_rows(rows: Iterable[Dict[str, Any]]) -> Dict[tuple, Dict[str, Any]]:
    """(input digest, settings key) -> the latest row whose outputs exist."""
    done: Dict[tuple, Dict[str, Any]] = {}
    for row in rows:
        if row.get("status") in DONE and row.get("input_digest") and _outputs_exist(row):
            done[(row["input_digest"], row.get("settings_key"))] = row
    return done


def _outputs_exist(row: Dict[str, Any]) -> bool:
    # A run folder deleted by hand means the work is gone: do it again.
    return not row.get("output_path") or Path(row["output_path"]).exists()


class ResultsTable:
    """The table files of one batch run, under its lock."""

    PARQUET_EVERY_SECONDS = 30.0

    def __init__(self, out: Path) -> None:
        self.out = Path(out).expanduser()
        self.lock = BatchLock(self.out)
        self._last_parquet = time.monotonic()

    def __enter__(self) -> "ResultsTable":
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _not_writable(self.out, exc) from exc
        self.lock.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()

    def previous(self) -> List[Dict[str, Any]]:
        return read_rows(self.out)

    def append(self, row: Dict[str, Any], rows_so_far: Optional[Callable[[], List[Dict[str, Any]]]] = None) -> None:
        """Record one finished item durably; rebuild the parquet file now and then."""
        line = json.dumps(row, ensure_ascii=False, default=str) + "\n"
        try:
            with open(self.out / JSONL_FILE, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise _not_writable(self.out, exc) from exc
        if rows_so_far is not None and time.monotonic() - self._last_parquet > self.PARQUET_EVERY_SECONDS:
            self.write_parquet(rows_so_far())

    def write_final(self, rows: List[Dict[str, Any]]) -> None:
        """Both files now hold exactly ``rows`` (this run's table), each replaced atomically."""
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        _replace_atomically(self.out / JSONL_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        self.write_parquet(rows)

    def write_parquet(self, rows: List[Dict[str, Any]]) -> bool:
        """Write results.parquet if pyarrow is installed (the JSONL file is the table otherwise)."""
        self._last_parquet = time.monotonic()
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            return False
        table = pa.Table.from_pylist([ordered(r) for r in rows])
        _replace_atomically(self.out / PARQUET_FILE, lambda tmp: pq.write_table(table, tmp))
        return True


def ordered(row: Dict[str, Any]) -> Dict[str, Any]:
    """A row with every column, in the table's order (missing ones None)."""
    return {name: row.get(name) for name in COLUMNS}


def _replace_atomically(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _not_writable(path.parent, exc) from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def as_table(rows: List[Dict[str, Any]]) -> Any:
    """A pandas DataFrame of the rows when pandas is installed, else the list of row dicts."""
    try:
        import pandas as pd
    except ImportError:
        return [ordered(r) for r in rows]
    return pd.DataFrame([ordered(r) for r in rows], columns=list(COLUMNS))


__all__ = ["ResultsTable", "BatchLock", "BatchLockedError", "read_rows", "done_rows", "as_table", "COLUMNS",
           "JSONL_FILE", "PARQUET_FILE", "LOCK_FILE"]
