"""Fetch a model's files before loading it: progress a person can see, Cancel, resume, fast failure offline.

Why a step of its own: ``from_pretrained`` with a hub id downloads inside the library, whose progress
bars are lost when the load runs in the panel's worker thread (the panel showed a silent "load"
stage for minutes), and which cannot be cancelled. Worse, with no network the hub library retries
every request five times with back-off (1+2+4+8+8 s): about 23 s per file, and a captioner asks for
about ten files, so ``vid2vid caption VIDEO`` offline waited 220 s before its error.

So the loaders call ``fetch(model_id, ...)`` first. It returns a local folder, and the loader then
reads only that folder (no network at all):

* a local folder is returned as it is (nothing is fetched);
* with ``HF_HUB_OFFLINE`` set, the cached snapshot is returned (or a clear error);
* otherwise ONE listing request (``HfApi.model_info``, which the hub library sends without retries)
  with a short timeout (``VID2VID_HUB_TIMEOUT``, default 10 s) finds out whether the hub answers; when
  it does not, the cached snapshot is used if there is one, else ``DownloadError`` comes within
  seconds;
* when it answers, only the files the loader will read are fetched (configs, tokenizer files, and the
  weights: the requested variant such as fp16 when the folder has it, safetensors before pickles),
  one file at a time with ``hf_hub_download``: Cancel is honoured between files, the hub cache keeps
  every finished file (a later try fetches only the rest), and a connection that drops midway is
  resumed with an HTTP Range request (huggingface_hub from 1.0 on retries within one call; for older
  versions, which resume their ``.incomplete`` file on the next call, each file gets a second call).
  A file that still fails is fetched from its start next time with huggingface_hub 1.x and later,
  which downloads into a per-process temporary file and deletes it on failure; older versions
  resume it.

Progress goes out as ``progress.Progress`` reports of stage "download" (bytes done of total, with
``already`` = bytes that were on disk before, so speed and time left count only this session). The
reports go to whoever wraps the load in ``reporting(on_progress, cancel)`` (the pipeline does): the
registry's loaders take no arguments, and every loader, in any backend, reports the same way without
passing callbacks through each layer.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .models import is_local_folder, model_source
from .progress import CancelToken, Progress, ProgressCallback

STAGE = "download"
TIMEOUT_ENV = "VID2VID_HUB_TIMEOUT"
DEFAULT_TIMEOUT = 10.0  # seconds to wait for the hub's first answer (the hub library's own etag timeout)
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Everything else a transformers/diffusers loader reads: configs, tokenizer vocabularies, chat templates.
SMALL_SUFFIXES = (".json", ".txt", ".model", ".jinja")
# A file whose connection broke is asked for again once more: huggingface_hub from 1.0 on already
# resumes within one call, older versions only from their .incomplete file in the next call.
FILE_ATTEMPTS = 2
REPORT_EVERY = 0.25  # seconds between byte reports inside a file (the last one always goes out)
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")


class DownloadError(OSError):
    """The model's files could not be fetched: the hub did not answer, the id is unknown, a download failed.

    An ``OSError`` so that every loader's existing "could not load" handling wraps it in its own
    ``ModelLoadError`` with the advice that fits (network, HF_HOME, HF_HUB_OFFLINE, a local folder).
    """


_REPORTING: ContextVar[Tuple[Optional[ProgressCallback], Optional[CancelToken]]] = ContextVar(
    "vid2vid_download_reporting", default=(None, None))


@contextlib.contextmanager
def reporting(on_progress: Optional[ProgressCallback], cancel: Optional[CancelToken] = None) -> Iterator[None]:
    """Send the progress of every ``fetch`` inside this block to ``on_progress``; stop on ``cancel``."""
    token = _REPORTING.set((on_progress, cancel))
    try:
        yield
    finally:
        _REPORTING.reset(token)


# -- which files a loader reads ------------------------------------------------------------------


def weight_variant(filename: str) -> Optional[str]:
    """``"unet/diffusion_pytorch_model.fp16.safetensors"`` -> ``"fp16"``; ``"model.safetensors"`` -> None."""
    base = filename.rsplit("/", 1)[-1]
    for suffix in WEIGHT_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    base = _SHARD.sub("", base)  # "model.fp16-00001-of-00002" -> "model.fp16"
    return base.rsplit(".", 1)[1] if "." in base else None


def select_files(files: Iterable[str], folders: Sequence[str] = ("",), variant: Optional[str] = None) -> List[str]:
    """The files of a repository listing that a ``from_pretrained`` loader reads, in listing order.

    Only files directly in ``folders`` ("" is the top level; "unet" its subfolder). In each folder:
    every config/tokenizer file, and ONE set of weights: the ``variant`` files (e.g. fp16) when the
    folder has them, else the files without a variant (what the loaders fall back to); safetensors
    when there are any, else pickles (.bin). The rest (other variants, ONNX, TF/Flax weights,
    examples) is never downloaded.
    """
    files = list(files)
    chosen: List[str] = []
    for folder in folders:
        inside = [f for f in files if (f.rsplit("/", 1)[0] if "/" in f else "") == folder]
        weights = [f for f in inside if f.endswith(WEIGHT_SUFFIXES)]
        wanted = [f for f in weights if variant is not None and weight_variant(f) == variant]
        wanted = wanted or [f for f in weights if weight_variant(f) is None]
        wanted = [f for f in wanted if f.endswith(".safetensors")] or wanted
        chosen += [f for f in inside if f.endswith(SMALL_SUFFIXES) or f in wanted]
    return [f for f in files if f in set(chosen)]


# -- the environment ---------------------------------------------------------------------------


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as the hub library reads it (also when set after huggingface_hub was imported)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_endpoint() -> str:
    """The hub's address: ``HF_ENDPOINT`` (read now, not at import) or huggingface.co."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_cache_dir() -> str:
    """Where the hub cache is: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the hub library's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def hub_timeout() -> float:
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        value = DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


# -- fetching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int


def fetch(model_id: str, *, revision: Optional[str] = None, folders: Sequence[str] = ("",),
          variant: Optional[str] = None, timeout: Optional[float] = None) -> str:
    """The local folder that holds ``model_id``'s files, downloading what is missing (see module doc).

    ``folders`` and ``variant`` say which files the loader reads (``select_files``). Raises
    ``DownloadError`` (an ``OSError``) when the files cannot be had, and ``GenerationCancelled`` when
    the ``reporting`` block's cancel token is set (checked between files).
    """
    if is_local_folder(model_id):
        return model_source(model_id)
    if hub_offline():
        cached = cached_snapshot(model_id, revision)
        if cached is None:
            raise DownloadError(f"HF_HUB_OFFLINE is set and {model_id!r} is not in the hub cache ({hub_cache_dir()}).")
        return cached
    timeout = hub_timeout() if timeout is None else float(timeout)
    try:
        files, commit = _list_files(model_id, revision, timeout)
    except Exception as exc:  # no network, a hub that does not answer, an unknown or gated id
        cached = cached_snapshot(model_id, revision)
        if cached is not None:
            return cached  # as the hub library does: no answer, but the files are here
        raise DownloadError(
            f"the Hugging Face hub ({hub_endpoint()}) did not give the file list "
            f"({type(exc).__name__}: {_first_line(exc)}), and the model is not in the hub cache "
            f"({hub_cache_dir()})."
        ) from exc
    wanted = [f for f in files if f.name in set(select_files([f.name for f in files], folders, variant))]
    if not wanted:
        raise DownloadError(f"{model_id!r} has no model files in {', '.join(repr(f) for f in folders)}.")
    return _download(model_id, revision, commit, wanted)


def cached_snapshot(model_id: str, revision: Optional[str]) -> Optional[str]:
    """The cached snapshot folder of ``model_id`` at ``revision`` (no network), or None."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model_id, revision=revision, cache_dir=hub_cache_dir(), local_files_only=True)
    except Exception:  # not cached (the hub library's error type differs between versions)
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"


def _list_files(model_id: str, revision: Optional[str], timeout: float) -> Tuple[List[RemoteFile], Optional[str]]:
    """One request, no retries: the repository's files with their sizes, and the commit they are at."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=hub_endpoint()).model_info(model_id, revision=revision, files_metadata=True,
                                                      timeout=timeout)
    files = [RemoteFile(s.rfilename, int(getattr(s, "size", None) or 0)) for s in (info.siblings or [])]
    return files, getattr(info, "sha", None)


class _ByteReporter:
    """Turns byte counts into throttled ``Progress("download", ...)`` reports."""

    def __init__(self, total: int, already: int, on_progress: Optional[ProgressCallback]) -> None:
        self.total, self.already, self.on_progress = total, already, on_progress
        self.done = already  # bytes of finished files (on disk before, or fetched now)
        self.in_file = 0  # bytes of the file being fetched
        self.started = time.perf_counter()
        self._last = 0.0

    def report(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.on_progress is None or (not force and now - self._last < REPORT_EVERY):
            return
        self._last = now
        step = min(self.total, self.done + self.in_file)
        self.on_progress(Progress(STAGE, step, self.total, now - self.started, already=self.already))

    def file_started(self, resumed_bytes: int) -> None:
        # A resumed file's first bytes were on disk already: they do not count toward the speed.
        self.already += resumed_bytes
        self.in_file = resumed_bytes

    def file_done(self, size: int) -> None:
        self.done += size
        self.in_file = 0
        self.report(force=True)


def _download(model_id: str, revision: Optional[str], commit: Optional[str], files: List[RemoteFile]) -> str:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    on_progress, cancel = _REPORTING.get()
    cache_dir = hub_cache_dir()

    def cached(name: str) -> Optional[str]:
        if commit is None:
            return None
        path = try_to_load_from_cache(model_id, name, cache_dir=cache_dir, revision=commit)
        return path if isinstance(path, str) else None

    present: Dict[str, str] = {f.name: p for f in files if (p := cached(f.name)) is not None}
    missing = [f for f in files if f.name not in present]
    if not missing:  # everything is here already: no request at all
        return _snapshot_folder(present[files[0].name], files[0].name)
    reporter = _ByteReporter(sum(f.size for f in files), sum(f.size for f in files if f.name in present),
                             on_progress)
    reporter.report(force=True)
    byte_hook = _byte_hook_kwargs(reporter)
    path = ""
    for remote in missing:
        if cancel is not None:
            cancel.raise_if_cancelled()  # between files: what is finished stays in the cache
        for attempt in range(FILE_ATTEMPTS):
            try:
                path = hf_hub_download(model_id, remote.name, revision=revision, cache_dir=cache_dir,
                                       endpoint=hub_endpoint(), **byte_hook)
                break
            except Exception as exc:
                if attempt + 1 < FILE_ATTEMPTS:
                    continue  # once more: huggingface_hub before 1.0 resumes its .incomplete file here
                raise DownloadError(
                    f"downloading {remote.name} of {model_id!r} failed ({type(exc).__name__}: {_first_line(exc)}); "
                    "the files that finished are kept and the next try fetches the rest.") from exc
        reporter.file_done(remote.size)
    return _snapshot_folder(path, missing[-1].name)


def _snapshot_folder(path: str, name: str) -> str:
    """``.../snapshots/<commit>/unet/x.safetensors`` and ``unet/x.safetensors`` -> ``.../snapshots/<commit>``."""
    folder = path
    for _ in name.split("/"):
        folder = os.path.dirname(folder)
    return folder


def _byte_hook_kwargs(reporter: _ByteReporter) -> Dict[str, object]:
    """``tqdm_class=`` for ``hf_hub_download`` when this huggingface_hub has it (1.x on); else nothing.

    Without it (huggingface_hub before 1.0) the reports come once per file, not during one.
    """
    from huggingface_hub import hf_hub_download

    if "tqdm_class" not in inspect.signature(hf_hub_download).parameters:
        return {}
    from tqdm import tqdm

    class _Bar(tqdm):  # the hub library drives it like a tqdm bar; it draws nothing and reports bytes
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            reporter.file_started(int(kwargs.get("initial") or 0))

        def update(self, n: float = 1) -> None:  # type: ignore[override]
            reporter.in_file += int(n or 0)
            reporter.report()

    return {"tqdm_class": _Bar}


__all__ = ["fetch", "reporting", "select_files", "weight_variant", "cached_snapshot", "DownloadError",
           "hub_offline", "hub_endpoint", "hub_cache_dir", "TIMEOUT_ENV", "DEFAULT_TIMEOUT"]
