"""The two text-to-video backends on the same work: ``diffusers`` (default) against ``modelscope``.

Both load their tiny test folders through their real loading code, then generate the same
settings (DDIM, the only scheduler both have) a few times; the median of each and the ratio are
printed. The tiny folders are not the same network at a smaller scale: the ModelScope layout keeps
its full-size VAE (84 M parameters, hard-coded in modelscope), so its decode stage dominates here.
Read the per-stage timings, not only the total.

    python benchmarks/bench_backends.py [--frames 8] [--size 64] [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import torch

    from vid2vid_widgets.generation import make_generator
    from vid2vid_widgets.generation.base import GenerationSettings

    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__} ({args.threads} thread(s))")
    settings = GenerationSettings(prompt="a red fox running through snow", seed=0, num_frames=args.frames,
                                  num_steps=args.steps, height=args.size, width=args.size, scheduler="ddim")
    print(f"work: {args.frames} frames, {args.size}x{args.size}, {args.steps} DDIM steps, guidance 9, tiny models, CPU")
    results = {}
    for backend in ("diffusers", "modelscope"):
        try:
            generator = make_generator(backend, models="tiny", device="cpu", dtype="float32")
        except Exception as exc:  # the modelscope extra may be missing: say so and go on
            print(f"{backend:10s} skipped: {exc}")
            continue
        started = time.perf_counter()
        generator.load()
        load = time.perf_counter() - started
        generator.generate(settings.replace(num_steps=1))  # warm-up: first-call allocations
        runs = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            result = generator.generate(settings)
            runs.append((time.perf_counter() - started, result.timings))
        total = statistics.median(t for t, _ in runs)
        stages = {k: statistics.median(tm.get(k, 0.0) for _, tm in runs) for k in ("encode_prompt", "denoise", "decode")}
        results[backend] = total
        print(f"{backend:10s} load {load:6.2f} s | generate median {total:6.2f} s | "
              + " | ".join(f"{k} {v:.2f} s" for k, v in stages.items())
              + f" | per step {stages['denoise'] / args.steps * 1000:.0f} ms")
    if len(results) == 2:
        print(f"modelscope / diffusers, whole generate: {results['modelscope'] / results['diffusers']:.2f}x")


if __name__ == "__main__":
    main()
