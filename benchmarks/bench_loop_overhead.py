"""How much does our denoising loop cost on top of the model work, and against diffusers' pipeline?

Three variants on the same mid-size random components (built once into a folder, in the real layout):

  (a) model  - the model work alone: the UNet called once per step on ready inputs, then the VAE
               decode (same slices as (b)); no tokenizer, no scheduler, no guidance arithmetic.
  (b) ours   - ``DiffusersTextToVideo.generate`` (uint8 frames, progress reporter, cancel checks).
  (c) pipe   - ``TextToVideoSDPipeline`` (deprecated) on the same components, scheduler and settings.

Each variant runs in a fresh subprocess (so its peak RSS is its own), does one warm-up run, then
``--repeats`` timed runs; rounds of (a, b, c) are interleaved so that load from other processes on a
shared machine hits all three alike. Reported: medians, overhead of (b) over (a), ratio (b)/(c), and
peak RSS (ru_maxrss) of each subprocess plus its growth over the RSS after loading.

    python benchmarks/bench_loop_overhead.py                 # defaults: 16 frames, 64x64, 10 steps
    python benchmarks/bench_loop_overhead.py --rounds 3 --repeats 5 --paired 15 --threads 2

The separate subprocesses give each variant's peak RSS; on a shared machine their timings swing by
tens of percent between processes, so the overhead and the ratio are also measured two steadier ways:
within each run (time outside the UNet and VAE calls) and in one process with the variants alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

PROMPT = "a red car on the street at night"
NEGATIVE = "blurry low quality"


def build_components(folder: Path) -> None:
    """Mid-size random UNet3D/VAE/CLIP text encoder in the ali-vilab layout (tokenizer from the tiny model)."""
    import shutil

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vid2vid_widgets.tiny.text_to_video import SCHEDULER_CONFIG, build as build_tiny_text_to_video

    tiny = folder / "_tiny"
    build_tiny_text_to_video(tiny)
    shutil.copytree(tiny / "tokenizer", folder / "tokenizer")
    shutil.copy(tiny / "model_index.json", folder / "model_index.json")
    vocab_size = len(json.loads((tiny / "tokenizer" / "vocab.json").read_text()))
    shutil.rmtree(tiny)

    torch.manual_seed(0)
    CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                 num_attention_heads=4, max_position_embeddings=77, bos_token_id=0,
                                 eos_token_id=1, pad_token_id=1)).save_pretrained(folder / "text_encoder")
    UNet3DConditionModel(
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
        up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=32,
    ).save_pretrained(folder / "unet")
    AutoencoderKL(
        block_out_channels=(32, 32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=32,
        layers_per_block=1,
    ).save_pretrained(folder / "vae")
    DDIMScheduler.from_config({k: v for k, v in SCHEDULER_CONFIG.items() if k != "_class_name"}).save_pretrained(
        folder / "scheduler"
    )


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_runs(folder: str, args: argparse.Namespace):
    """Load the components once; return the components and one zero-argument callable per variant."""
    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, TextToVideoSDPipeline

    from vid2vid_widgets.generation.base import GenerationSettings
    from vid2vid_widgets.generation.diffusers_t2v import DiffusersTextToVideo, build_scheduler

    settings = GenerationSettings(prompt=PROMPT, negative_prompt=NEGATIVE, seed=7, num_frames=args.frames,
                                  num_steps=args.steps, guidance_scale=9.0, height=args.size, width=args.size,
                                  scheduler=args.scheduler)
    gen = DiffusersTextToVideo(folder, device="cpu", vae_slice_frames=args.slice)
    c = gen.components

    latent = args.size // c.vae_scale_factor
    sample = torch.randn(2, 4, args.frames, latent, latent)
    embeds = torch.randn(2, 77, c.text_encoder.config.hidden_size)
    latents = torch.randn(1, 4, args.frames, latent, latent)
    timesteps = build_scheduler(args.scheduler, c.scheduler_config)
    timesteps.set_timesteps(args.steps)
    per_call = args.slice or args.frames

    def model() -> None:
        with torch.inference_mode():
            for t in timesteps.timesteps:
                c.unet(sample, t, encoder_hidden_states=embeds, return_dict=False)
            for start in range(0, args.frames, per_call):
                c.vae.decode(latents[0, :, start:start + per_call].permute(1, 0, 2, 3))

    def ours() -> None:
        gen.generate(settings)

    pipe = TextToVideoSDPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                                 scheduler=DDIMScheduler.from_config(c.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    scheduler_class = DPMSolverMultistepScheduler if args.scheduler == "dpm++" else DDIMScheduler

    def reference() -> None:
        pipe.scheduler = scheduler_class.from_config(c.scheduler_config)
        frames = pipe(PROMPT, negative_prompt=NEGATIVE, num_frames=args.frames, height=args.size,
                      width=args.size, num_inference_steps=args.steps, guidance_scale=9.0,
                      generator=torch.Generator().manual_seed(7), output_type="np").frames[0]
        (frames * 255).round().astype("uint8")  # the same uint8 result ours returns

    return c, {"model": model, "ours": ours, "pipe": reference}


def run_variant(variant: str, folder: str, args: argparse.Namespace) -> Dict[str, Any]:
    """One variant in this (fresh) process: load, warm up, time ``args.repeats`` runs."""
    c, runs = make_runs(folder, args)
    once = runs[variant]
    inside = instrument(c)
    loaded_rss = rss_mb()
    once()  # warm-up: first-call allocations and kernel selection
    times: List[float] = []
    cpu_times: List[float] = []
    model_times: List[float] = []
    for _ in range(args.repeats):
        inside["s"] = 0.0
        started, cpu_started = time.perf_counter(), time.process_time()
        once()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
        model_times.append(inside["s"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"variant": variant, "times": times, "cpu_times": cpu_times, "model_times": model_times,
            "loaded_rss_mb": loaded_rss, "peak_rss_mb": peak}


def run_paired(folder: str, args: argparse.Namespace) -> Dict[str, Any]:
    """All three variants in one process, alternating run by run, for ratios that drift cancels out of.

    Runs of (a), (b), (c) follow each other within seconds, so a neighbour's burst of load hits a whole
    triple rather than one variant; the median of the per-triple ratios is the robust figure.
    """
    _, runs = make_runs(folder, args)
    for once in runs.values():
        once()  # warm-up
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for index in range(args.paired):
        # Rotate the order so that no variant always runs first (or right after the heaviest one).
        names = list(runs)[index % 3:] + list(runs)[:index % 3]
        for name in names:
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    return {"times": times}


def instrument(c) -> Dict[str, float]:
    """Add up the wall time spent inside UNet calls and VAE decodes, within the same run.

    On a shared machine the run-to-run spread is larger than the overhead we look for; the share of
    a run spent *outside* the models is measured within each run, so other tenants slow both parts alike.
    Every variant carries the same hooks, so their own cost cancels out.
    """
    inside = {"s": 0.0, "t0": 0.0}

    def before(module, args):
        inside["t0"] = time.perf_counter()

    def after(module, args, output):
        inside["s"] += time.perf_counter() - inside["t0"]

    c.unet.register_forward_pre_hook(before)
    c.unet.register_forward_hook(after)
    real_decode = c.vae.decode

    def decode(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_decode(*args, **kwargs)
        finally:
            inside["s"] += time.perf_counter() - started

    c.vae.decode = decode
    return inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--scheduler", default="dpm++", choices=("dpm++", "ddim"))
    parser.add_argument("--slice", type=int, default=8, help="vae_slice_frames for (a) and (b)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of (a, b, c), one subprocess each")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per subprocess, after one warm-up")
    parser.add_argument("--paired", type=int, default=9, help="alternating (a, b, c) triples in one process")
    parser.add_argument("--folder", help="reuse components built before (else a temporary folder)")
    parser.add_argument("--_variant", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._variant == "paired":
        print(json.dumps(run_paired(args.folder, args)))
        return
    if args._variant:
        print(json.dumps(run_variant(args._variant, args.folder, args)))
        return

    import torch

    import diffusers
    import transformers

    print(f"machine: {platform.machine()} {platform.processor() or ''} | {_cpu_model()} | {os.cpu_count()} CPUs | "
          f"load average {os.getloadavg()[0]:.1f} | torch {torch.__version__} ({args.threads} thread(s)) | "
          f"diffusers {diffusers.__version__} | transformers {transformers.__version__} | Python {platform.python_version()}")
    print(f"settings: {args.frames} frames, {args.size}x{args.size}, {args.steps} steps {args.scheduler}, guidance 9 "
          f"(batch 2), VAE slices of {args.slice}; {args.rounds} rounds x {args.repeats} timed runs per variant")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp) / "midsize"
        if not (folder / "unet").exists():
            started = time.perf_counter()
            build_components(folder)
            print(f"built mid-size components in {time.perf_counter() - started:.1f} s: {folder}")
        results: Dict[str, Dict[str, Any]] = {
            v: {"times": [], "cpu_times": [], "inside": [], "outside": [], "peak": [], "grow": []}
            for v in ("model", "ours", "pipe")
        }
        passthrough = ["--frames", str(args.frames), "--size", str(args.size), "--steps", str(args.steps),
                       "--scheduler", args.scheduler, "--slice", str(args.slice), "--threads", str(args.threads),
                       "--repeats", str(args.repeats), "--paired", str(args.paired), "--folder", str(folder)]
        for round_index in range(args.rounds):
            for variant in ("model", "ours", "pipe"):
                out = subprocess.run([sys.executable, __file__, "--_variant", variant, *passthrough],
                                     capture_output=True, text=True, check=True)
                data = json.loads(out.stdout.strip().splitlines()[-1])
                results[variant]["times"] += data["times"]
                results[variant]["cpu_times"] += data["cpu_times"]
                results[variant]["inside"] += data["model_times"]
                results[variant]["outside"] += [(t - m) / m for t, m in zip(data["times"], data["model_times"])]
                results[variant]["peak"].append(data["peak_rss_mb"])
                results[variant]["grow"].append(data["peak_rss_mb"] - data["loaded_rss_mb"])
                print(f"  round {round_index + 1} {variant:5s}: wall " + ", ".join(f"{t:.3f}" for t in data["times"])
                      + " s; CPU " + ", ".join(f"{t:.3f}" for t in data["cpu_times"])
                      + f" s; peak RSS {data['peak_rss_mb']:.0f} MB", flush=True)

    # CPU time of the (single-threaded) process is the headline: on a shared machine wall time also
    # measures the other tenants. Wall time is shown beside it.
        paired: Dict[str, List[float]] = {}
        if args.paired:
            out = subprocess.run([sys.executable, __file__, "--_variant", "paired", *passthrough],
                                 capture_output=True, text=True, check=True)
            paired = json.loads(out.stdout.strip().splitlines()[-1])["times"]

    med = {v: statistics.median(r["times"]) for v, r in results.items()}
    cpu = {v: statistics.median(r["cpu_times"]) for v, r in results.items()}
    print()
    print(f"{'variant':28s} {'CPU s (median)':>14s} {'wall s (median)':>15s} {'wall min':>9s} "
          f"{'peak RSS MB':>12s} {'RSS growth MB':>14s}")
    labels = {"model": "(a) model work only", "ours": "(b) DiffusersTextToVideo", "pipe": "(c) TextToVideoSDPipeline"}
    for v, r in results.items():
        print(f"{labels[v]:28s} {cpu[v]:14.3f} {med[v]:15.3f} {min(r['times']):9.3f} {max(r['peak']):12.0f} "
              f"{max(r['grow']):14.0f}")
    print()
    for name, table in (("CPU time", cpu), ("wall time", med)):
        overhead = (table["ours"] / table["model"] - 1) * 100
        ratio = table["ours"] / table["pipe"]
        print(f"{name:9s}: overhead of (b) over (a) {overhead:+6.2f} % (target < 3 %); "
              f"ratio (b)/(c) {ratio:.3f} (target <= 1.02)")
    print()
    print("within each run: wall time inside the UNet calls and VAE decodes, and the time outside them "
          "relative to it (medians):")
    for v in ("model", "ours", "pipe"):
        print(f"  {labels[v]:28s} inside {statistics.median(results[v]['inside']):7.3f} s   "
              f"outside {statistics.median(results[v]['outside']) * 100:+6.2f} %")
    if paired:
        b_over_a = [b / a - 1 for a, b in zip(paired["model"], paired["ours"])]
        b_over_c = [b / c for b, c in zip(paired["ours"], paired["pipe"])]
        print()
        print(f"paired, one process, {len(b_over_a)} alternating triples (wall s, medians: "
              f"a {statistics.median(paired['model']):.3f}, b {statistics.median(paired['ours']):.3f}, "
              f"c {statistics.median(paired['pipe']):.3f}):")
        print(f"  overhead of (b) over (a): {statistics.median(b_over_a) * 100:+6.2f} % (target < 3 %)")
        print(f"  ratio (b)/(c):            {statistics.median(b_over_c):.3f}    (target <= 1.02)")
    print(f"per step (a), CPU: {cpu['model'] / args.steps:.3f} s (includes the decode share)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
