"""What live preview costs, and what batching variations gains.

1. Live preview at the default interval (every 5 steps): a run with previews (each one made into a PNG,
   as the panel does) against the same run without, as a percentage of the run. Measured two ways:
   inside each run (the seconds spent making previews, which other tenants of a shared machine slow
   no more than the rest) and as the median ratio of paired runs (off, on, off, on...). Target < 2 %.
2. N=4 variations in one batched pass against four runs one after another (same seeds, same frames).

Both on a mid-size random UNet3D (the one benchmarks/bench_loop_overhead.py builds), on the CPU by
default, or a GPU with ``--device cuda`` (fp16).

    python benchmarks/bench_preview.py              # mid-size, 16 frames 64x64, 25 steps
    python benchmarks/bench_preview.py --quick      # the tiny model, a few seconds (smoke test)
    python benchmarks/bench_preview.py --device cuda --frames 16 --size 256
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_loop_overhead's builder

PROMPT = "a red car on the street at night"
NEGATIVE = "blurry low quality"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--variation-steps", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3, help="paired (off, on) runs for the preview cost")
    parser.add_argument("--rounds", type=int, default=2, help="paired (batched, one after another) variation rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--folder", help="components built before (else built into a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="the tiny model, small settings: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.size, args.steps, args.variation_steps, args.pairs, args.rounds = 8, 32, 10, 4, 1, 1

    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    from vid2vid_widgets.generation.base import GenerationSettings
    from vid2vid_widgets.generation.diffusers_t2v import DiffusersTextToVideo
    from vid2vid_widgets.generation.preview import DEFAULT_PREVIEW_EVERY, png_bytes

    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "CPU"
    print(f"machine: {device_name} | {os.cpu_count()} CPUs | load average {os.getloadavg()[0]:.1f} | "
          f"torch {torch.__version__} ({args.threads} threads) | device {args.device}")

    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            from vid2vid_widgets.tiny import tiny_model_path

            folder, model = tiny_model_path("text-to-video"), "tiny"
        else:
            folder, model = args.folder or str(Path(tmp) / "midsize"), "mid-size random UNet3D"
            if not (Path(folder) / "unet").exists():
                from bench_loop_overhead import build_components

                started = time.perf_counter()
                build_components(Path(folder))
                print(f"built mid-size components in {time.perf_counter() - started:.1f} s")
        dtype = "float16" if args.device.startswith("cuda") else "float32"
        gen = DiffusersTextToVideo(folder, device=args.device, dtype=dtype)
        gen.load()
        settings = GenerationSettings(prompt=PROMPT, negative_prompt=NEGATIVE, seed=7, num_frames=args.frames,
                                      num_steps=args.steps, height=args.size, width=args.size)
        print(f"model: {model}; {args.frames} frames of {args.size}x{args.size}, guidance 9 (batch 2), {dtype}")

        # -- 1. live preview ---------------------------------------------------------------------
        encode_seconds = []

        def like_the_panel(preview) -> None:  # the panel turns every preview into PNG bytes
            started = time.perf_counter()
            png_bytes(preview.image)
            encode_seconds.append(time.perf_counter() - started)

        # Warm-up, both ways: first-call allocations, kernel choice, fitting the map (the tiny model).
        gen.generate(settings)
        gen.generate(settings, on_preview=like_the_panel)
        encode_seconds.clear()
        off, on, inside = [], [], []
        for _ in range(args.pairs):
            started = time.perf_counter()
            gen.generate(settings)
            off.append(time.perf_counter() - started)
            before = len(encode_seconds)
            started = time.perf_counter()
            result = gen.generate(settings, on_preview=like_the_panel, preview_every=DEFAULT_PREVIEW_EVERY)
            on.append(time.perf_counter() - started)
            inside.append(result.timings["preview"] + sum(encode_seconds[before:]))
        previews = len(encode_seconds) // args.pairs
        share = statistics.median(s / t for s, t in zip(inside, on)) * 100
        paired = statistics.median(b / a - 1 for a, b in zip(off, on)) * 100
        print(f"\n1. live preview every {DEFAULT_PREVIEW_EVERY} steps ({previews} previews in {args.steps} steps):")
        print(f"   run without previews: median {statistics.median(off):.3f} s; with: {statistics.median(on):.3f} s")
        print(f"   preview work inside the runs (x0, strip, PNG): {statistics.median(inside) * 1000:.1f} ms "
              f"= {share:.2f} % of a run (target < 2 %)")
        print(f"   paired runs, median (on / off - 1): {paired:+.2f} % (noisy on a shared machine)")

        # -- 2. variations -----------------------------------------------------------------------
        seeds = [11, 12, 13, 14]
        variation = settings.replace(num_steps=args.variation_steps)
        gen.generate_variations(variation.replace(num_steps=1), seeds)  # warm-up of the batch-8 kernels
        batched, serial = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            gen.generate_variations(variation, seeds)
            batched.append(time.perf_counter() - started)
            started = time.perf_counter()
            gen.generate_variations(variation, seeds, batched=False)
            serial.append(time.perf_counter() - started)
        print(f"\n2. N={len(seeds)} variations, {args.variation_steps} steps:")
        print(f"   one batched pass: median {statistics.median(batched):.3f} s; four runs one after another: "
              f"{statistics.median(serial):.3f} s")
        print(f"   speed-up of batching: {statistics.median(s / b for s, b in zip(serial, batched)):.2f}x")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
