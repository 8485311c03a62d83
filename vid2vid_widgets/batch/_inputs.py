"""Which files a batch works through: a folder (recursively), a glob, a CSV/JSONL list, or paths.

Files are not judged by their extension here: every file found becomes an item, and the batch's
probe (which reads the content) decides whether it is a video; junk becomes an ``error`` row with a
readable message. A bad value in a CSV/JSONL row (a seed that is not a number) is that row's error,
not the end of the batch.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from ..errors import InvalidSettingsError

PathLike = Union[str, "os.PathLike[str]"]
TABLE_SUFFIXES = (".csv", ".jsonl")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch, with the per-row choices a CSV/JSONL may make."""

    path: str  # absolute
    prompt: Optional[str] = None  # may hold "{caption}"; None: the batch's prompt template
    seed: Optional[int] = None
    strength: Optional[float] = None
    problem: Optional[str] = None  # a bad list row: recorded as an error, never run


def discover_inputs(inputs: Union[PathLike, Sequence[PathLike]], exclude: Optional[PathLike] = None) -> List[BatchItem]:
    """The batch's items, in a stable order (sorted paths; list files keep their row order).

    ``inputs``: a folder (every file below it, hidden ones left out), a glob pattern
    (``clips/**/*.mp4``), a ``.csv``/``.jsonl`` file with a ``path`` column, a single file, or a
    list of any of these. ``exclude``: a folder never to take inputs from (the batch's own output
    folder, so a rerun does not caption its own generated videos).
    """
    sources = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not sources:
        raise InvalidSettingsError("No inputs given: name a folder, a glob such as 'clips/*.mp4', or a CSV/JSONL list.")
    skip = Path(exclude).expanduser().resolve() if exclude is not None else None
    items: List[BatchItem] = []
    for source in sources:
        found = _items_from(os.fspath(source), skip)
        if not found:
            raise InvalidSettingsError(f"No files found in {os.fspath(source)!r}: check the folder, pattern or list.")
        items.extend(found)
    return items


def _items_from(source: str, skip: Optional[Path]) -> List[BatchItem]:
    path = Path(source).expanduser()
    if path.is_dir():
        return [BatchItem(str(p)) for p in _files_below(path.resolve(), skip)]
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        return read_list(path)
    if path.is_file():
        return [BatchItem(str(path.resolve()))]
    if _GLOB_CHARS & set(source):
        matches = sorted(Path(m).resolve() for m in glob.glob(os.path.expanduser(source), recursive=True))
        return [BatchItem(str(m)) for m in matches if m.is_file() and not _inside(m, skip)]
    raise InvalidSettingsError(f"{source!r} is not a file, a folder or a glob pattern that exists.")


def _inside(path: Path, folder: Optional[Path]) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def _files_below(folder: Path, skip: Optional[Path]) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        # Hidden folders (.git, .ipynb_checkpoints) and our own output folder hold no inputs.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(Path(root, d), skip))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root, name)


def read_list(path: PathLike) -> List[BatchItem]:
    """Items from a CSV (header row) or JSONL (one object a line) with ``path`` and optional
    ``prompt``, ``seed``, ``strength``. Relative paths are relative to the list file's folder."""
    path = Path(path)
    rows = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    return [_item_from_row(row, path, number) for number, row in rows]


def _read_csv(path: Path) -> List[tuple]:
    with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: Excel writes a BOM
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
            raise InvalidSettingsError(
                f"{path} has no 'path' column: its first row must name the columns, e.g. 'path,prompt,seed,strength'."
            )
        return [(n, {k.strip(): v for k, v in row.items() if k}) for n, row in enumerate(reader, start=2)]


def _read_jsonl(path: Path) -> List[tuple]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            row = {"path": "", "_problem": f"line {number} of {path.name} is not JSON ({exc})"}
        rows.append((number, row if isinstance(row, dict) else {"path": "", "_problem": f"line {number} is not an object"}))
    return rows


def _item_from_row(row: Dict[str, Any], list_file: Path, number: int) -> BatchItem:
    raw_path = str(row.get("path") or "").strip()
    where = f"row {number} of {list_file.name}"
    full = str((list_file.parent / Path(raw_path).expanduser()).resolve()) if raw_path else f"{list_file}:{number}"
    if row.get("_problem"):
        return BatchItem(full, problem=str(row["_problem"]))
    if not raw_path:
        return BatchItem(full, problem=f"{where} has an empty path.")
    prompt = row.get("prompt")
    prompt = str(prompt).strip() or None if prompt is not None else None
    try:
        seed = _number(row.get("seed"), int)
        strength = _number(row.get("strength"), float)
    except ValueError as exc:
        return BatchItem(full, problem=f"{where}: {exc}; fix the value or leave the cell empty.")
    return BatchItem(full, prompt=prompt, seed=seed, strength=strength)


def _number(value: Any, kind: type) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
        if kind is int and number != int(number):
            raise ValueError
        return kind(number)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a {'whole number' if kind is int else 'number'}") from None


__all__ = ["BatchItem", "discover_inputs", "read_list", "TABLE_SUFFIXES"]
