"""The Ray engine: a Ray Data pipeline with a CPU stage and a model stage; Ray does the scheduling.

    items -> map_batches(prepare_batch)            CPU tasks: digest, probe, sample caption frames
          -> map_batches(ModelStage, concurrency)  actors: one resident pipeline each (caption, generate)

One actor holds one model set (BLIP and the text-to-video model, which fit one T4 together), with
``num_gpus=1`` when the cluster has GPUs and a quarter of a CPU otherwise (the CPU is then shared
with the prepare tasks; Ray's CPU counts are scheduling tokens, not pinned cores). The same code
runs on a laptop (a local Ray started here) and on a cluster (``ray_address``); there, every node
must see the input and output paths (a shared filesystem), as the run folders are written by the
actors.

Rows travel as JSON text; the sampled frames as an ``.npz`` of plain arrays, read back with
``allow_pickle=False``: nothing between the stages is ever unpickled by us.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import MissingDependencyError, Vid2VidError
from ._work import BatchJob, prepare, run_models

RAY_EXTRA = 'pip install "vid2vid-widgets[ray]"'
# Keep a local Ray off the network: no usage reports (checked by Ray at start), no dashboard.
_QUIET_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is the part we use; plain "ray" lacks pandas/pyarrow)
    except ImportError as exc:
        raise MissingDependencyError(
            f"The Ray engine needs Ray Data: {RAY_EXTRA} (or use --engine local). ({exc})"
        ) from exc
    return ray


def start_ray(address: Optional[str] = None, num_cpus: Optional[int] = None) -> bool:
    """Connect to ``address`` (a cluster) or start a local Ray; False when one is already running here."""
    for name, value in _QUIET_RAY_ENV.items():
        os.environ.setdefault(name, value)
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 logging_level=logging.WARNING, configure_logging=True, log_to_driver=False)
    except ConnectionError as exc:
        raise Vid2VidError(
            f"Could not reach the Ray cluster at {address!r} ({exc}). Start it with `ray start --head` on the "
            "head node (and `ray start --address=HEAD:6379` on the others), or leave --ray-address out to "
            "run a local Ray."
        ) from exc
    return True


def prepare_batch(batch: Any, done: Dict[tuple, Dict[str, Any]], caption_frames: int) -> Any:
    """CPU stage: prepare each item of a pandas batch (see ``_work.prepare``)."""
    import pandas as pd

    out = []
    for record in batch.to_dict("records"):
        row, loaded, sampled = prepare(json.loads(record["row"]), done, caption_frames)
        payload = _pack(loaded, sampled) if loaded is not None else b""
        out.append({"row": json.dumps(row), "payload": payload})
    return pd.DataFrame(out)


class ModelStage:
    """Model stage: one resident pipeline per actor, built once in ``__init__``."""

    def __init__(self, job: Dict[str, Any], env: Dict[str, str]) -> None:
        os.environ.update(env)  # e.g. where the tiny models are, for actors on a fresh worker
        self.job = BatchJob(**job)
        self.pipeline = self.job.pipeline()
        self.pipeline.captioner.load()
        if not self.job.caption_only:
            self.pipeline.generator.load()

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        out = []
        for record in batch.to_dict("records"):
            row = json.loads(record["row"])
            loaded, sampled = _unpack(record["payload"]) if record["payload"] else (None, None)
            out.append({"row": json.dumps(run_models(self.pipeline, self.job, row, loaded, sampled)), "payload": b""})
        return pd.DataFrame(out)


def _pack(loaded: Any, sampled: Any) -> bytes:
    """A prepared item as data: the frames and their times as arrays, the rest as JSON text."""
    meta = {"path": str(loaded.path), "name": loaded.name, "info": dataclasses.asdict(loaded.info),
            "decoded_frames": sampled.decoded_frames}
    buffer = io.BytesIO()
    np.savez(buffer, frames=np.stack(sampled.frames), timestamps=np.asarray(sampled.timestamps, dtype=np.float64),
             meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8))
    return buffer.getvalue()


def _unpack(payload: bytes) -> Tuple[Any, Any]:
    from .. import video
    from ..pipeline import LoadedVideo

    with np.load(io.BytesIO(payload), allow_pickle=False) as data:
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
        info = video.VideoInfo(**meta["info"])
        sampled = video.SampledFrames(frames=list(data["frames"]), timestamps=[float(t) for t in data["timestamps"]],
                                      info=info, decoded_frames=int(meta["decoded_frames"]))
    return LoadedVideo(path=Path(meta["path"]), info=info, name=meta["name"]), sampled


def _user_error(exc: BaseException) -> Optional[Vid2VidError]:
    """Our own error inside Ray's wrappers (an actor that could not load its models), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, Vid2VidError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


def run_ray(job: BatchJob, plans: List[Dict[str, Any]], done: Dict[tuple, Dict[str, Any]], record,
            concurrency: Optional[int] = None, address: Optional[str] = None,
            num_cpus: Optional[int] = None) -> None:
    """Run ``plans`` on Ray Data; each finished row goes to ``record`` as it streams back."""
    ray = import_ray()
    started_here = start_ray(address, num_cpus)
    try:
        for row in _stream(ray, job, plans, done, concurrency):
            record(row)
    except Exception as exc:
        ours = _user_error(exc)
        if ours is not None and ours is not exc:
            raise ours from None
        raise
    finally:
        if started_here:
            ray.shutdown()


def _stream(ray: Any, job: BatchJob, plans: List[Dict[str, Any]], done, concurrency: Optional[int]
            ) -> Iterator[Dict[str, Any]]:
    if not plans:
        return
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the batch has its own bar
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # and its own summary line
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = int(concurrency or max(1, gpus))
    resources = {"num_gpus": 1} if gpus else {"num_gpus": 0, "num_cpus": 0.25}
    env = {k: os.environ[k] for k in ("VID2VID_TINY_MODELS",) if k in os.environ}
    ds = ray.data.from_items([{"row": json.dumps(p)} for p in plans], override_num_blocks=len(plans))
    ds = ds.map_batches(prepare_batch, batch_size=1, batch_format="pandas", num_cpus=0.5,
                        fn_kwargs={"done": done, "caption_frames": job.caption_frames})
    ds = ds.map_batches(ModelStage, batch_size=1, batch_format="pandas",
                        compute=ray.data.ActorPoolStrategy(size=actors),
                        fn_constructor_kwargs={"job": dataclasses.asdict(job), "env": env}, **resources)
    for record in ds.iter_rows():
        yield json.loads(record["row"])


__all__ = ["run_ray", "start_ray", "import_ray", "ModelStage", "prepare_batch", "RAY_EXTRA"]
