"""Where outputs go and how each run is recorded. Nothing is ever overwritten.

Every generated video gets its own folder ``<output_dir>/runs/<YYYYmmdd-HHMMSS>-<slug>/`` holding
``output.mp4`` and ``run.json`` (caption, per-frame captions, every setting with the seed actually
used, model ids and revisions, package versions, timings, a reference to the input). ``run.json`` is
written last and atomically, so a folder without it is an interrupted run: history ignores it.
Uploaded files are stored under ``<output_dir>/uploads/`` with sanitised, unique names.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .errors import OutputNotWritableError, Vid2VidError

RUN_FILE = "run.json"
OUTPUT_FILE = "output.mp4"
PREVIEWS_DIR = "previews"  # in a run folder: the live previews, when they were saved
RUN_FORMAT = 1


def slugify(text: str, max_length: int = 40) -> str:
    """A short, safe folder-name fragment from free text ("A dog, running!" -> "a-dog-running")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "video"


def safe_filename(name: str, max_length: int = 80) -> str:
    """An uploaded file's name made harmless: no folders, no "..", no control characters.

    Keeps letters of any script (people name files in their own language) and the extension.
    """
    base = name.replace("\\", "/").split("/")[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if ch.isprintable())
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = stem[: max_length - len(ext) - 1] or "upload"
    return f"{stem}.{ext}" if ext else stem


def package_versions() -> Dict[str, str]:
    """Versions that decide what a run produces, for reproducibility."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("vid2vid-widgets", "torch", "diffusers", "transformers", "av", "numpy", "modelscope"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _not_writable(path: Path, exc: OSError) -> OutputNotWritableError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return OutputNotWritableError(
        f"Cannot write to {path} ({reason}). Nothing was saved; earlier runs are untouched. "
        "Free some disk space or choose another output folder (output_dir=... / --output-dir)."
    )


def write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    """Write JSON so that readers see either the old file or the whole new one, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_digest(path: Union[str, Path], limit: int = 64 * 1024 * 1024) -> str:
    """sha256 of the first ``limit`` bytes (enough to recognise an input without reading 4 GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        remaining = limit
        while remaining > 0:
            chunk = handle.read(min(1 << 20, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


@dataclass
class RunRecord:
    """One completed run, as read back from its folder."""

    run_dir: Path
    data: Dict[str, Any]

    @property
    def output_path(self) -> Path:
        return self.run_dir / self.data.get("output", OUTPUT_FILE)

    @property
    def prompt(self) -> str:
        return self.data.get("settings", {}).get("prompt", "")

    @property
    def seed(self) -> Optional[int]:
        return self.data.get("settings", {}).get("seed")

    @property
    def created(self) -> str:
        return self.data.get("created", "")

    @property
    def name(self) -> str:
        return self.run_dir.name


class RunStore:
    """The output folder: run folders, uploads and previews under one root."""

    def __init__(self, root: Union[str, Path] = "vid2vid-runs") -> None:
        self.root = Path(root).expanduser()

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def _mkdir(self, path: Path) -> Path:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _not_writable(path, exc) from exc
        return path

    def new_run_dir(self, prompt: str) -> Path:
        """A fresh folder for one run; a name already taken gets a numeric suffix, never reused."""
        parent = self._mkdir(self.runs_dir)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{slugify(prompt)}"
        for n in range(1, 10_000):
            candidate = parent / (base if n == 1 else f"{base}-{n}")
            try:
                candidate.mkdir()  # exist_ok=False: this is what makes the name ours alone
                return candidate
            except FileExistsError:
                continue
            except OSError as exc:
                raise _not_writable(candidate, exc) from exc
        raise Vid2VidError(f"Too many runs named {base!r} in {parent}; choose another output folder.")

    def save_upload(self, name: str, data: bytes) -> Path:
        """Store uploaded bytes under uploads/ with a sanitised name that never replaces a file."""
        folder = self._mkdir(self.root / "uploads")
        clean = safe_filename(name or "upload.mp4")
        stem, dot, ext = clean.rpartition(".")
        if not dot:
            stem, ext = clean, ""
        for n in range(1, 10_000):
            candidate = folder / (clean if n == 1 else f"{stem}-{n}{dot}{ext}")
            try:
                with open(candidate, "xb") as handle:  # "x": fail rather than overwrite
                    handle.write(data)
                return candidate
            except FileExistsError:
                continue
            except OSError as exc:
                if candidate.exists():
                    candidate.unlink()
                raise _not_writable(folder, exc) from exc
        raise Vid2VidError(f"Too many uploads named {clean!r}; choose another output folder.")

    def previews_dir(self) -> Path:
        return self._mkdir(self.root / "previews")

    def save_previews(self, run_dir: Path, previews: Sequence[Tuple[int, int, bytes]]) -> List[Dict[str, Any]]:
        """Write live-preview pictures (step, total, PNG bytes) into ``<run>/previews/``; what run.json lists.

        Never overwrites: the folder must be new, and each file is created exclusively.
        """
        folder = run_dir / PREVIEWS_DIR
        listed = []
        try:
            folder.mkdir()
            for step, total, png in previews:
                name = f"step-{step:04d}-of-{total:04d}.png"
                with open(folder / name, "xb") as handle:
                    handle.write(png)
                listed.append({"step": step, "total": total, "file": f"{PREVIEWS_DIR}/{name}"})
        except OSError as exc:
            raise _not_writable(folder, exc) from exc
        return listed

    def save_run(self, run_dir: Path, record: Dict[str, Any]) -> RunRecord:
        """Write run.json (last, atomically): from now on the run counts as complete."""
        data = {"format": RUN_FORMAT, "created": _dt.datetime.now().isoformat(timespec="seconds"),
                "output": OUTPUT_FILE, "versions": package_versions(), **record}
        try:
            write_json_atomic(run_dir / RUN_FILE, data)
        except OSError as exc:
            raise _not_writable(run_dir, exc) from exc
        return RunRecord(run_dir, data)

    def discard(self, run_dir: Path) -> None:
        """Remove a run folder that did not complete (only ever one this process just created)."""
        if run_dir.is_dir() and not (run_dir / RUN_FILE).exists():
            shutil.rmtree(run_dir, ignore_errors=True)

    def history(self) -> List[RunRecord]:
        """Completed runs, newest first. Folders without a readable run.json are ignored."""
        if not self.runs_dir.is_dir():
            return []
        records = []
        for run_dir in self.runs_dir.iterdir():
            record = self.load(run_dir)
            if record is not None and record.output_path.exists():
                records.append(record)
        records.sort(key=lambda r: (r.created, r.name), reverse=True)
        return records

    @staticmethod
    def load(run_dir: Union[str, Path]) -> Optional[RunRecord]:
        """Read one run folder; None when it is not a complete run."""
        path = Path(run_dir) / RUN_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or "settings" not in data:
            return None
        return RunRecord(Path(run_dir), data)


__all__ = ["RunStore", "RunRecord", "slugify", "safe_filename", "package_versions", "RUN_FILE", "OUTPUT_FILE", "PREVIEWS_DIR"]
