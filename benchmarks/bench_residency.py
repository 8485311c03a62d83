"""Residency: models load once per process; later runs, pipelines and panels cost only the compute.

One process, the real code path (``Vid2VidPipeline`` and a headless ``Vid2VidPanel``), each step a
caption of a short test video followed by a generation from that caption:

  1. pipeline A, first run   (includes loading both models)
  2. pipeline A, second run  (median of ``--repeats``; the baseline every other row is compared to)
  3. pipeline B (new object), first run
  4. panel 1, first caption+generate (headless: ``load()`` with autocaption, then ``generate()``)
  5. panel 2, first caption+generate

After each step it prints the wall time, its ratio to the second run, the load time the pipeline
itself recorded, and ``REGISTRY.total_loads``. Target: no loads after step 1.

With the tiny models (``models="tiny"``) loading is cheap; ``--size mid`` (the default without
``--quick``) also repeats the scenario with a mid-size random text-to-video model, saved with
``save_pretrained`` into a temporary folder in the ali-vilab/text-to-video-ms-1.7b layout and passed
as ``generator_model``, so that the load cost is visible beside the compute.

    python benchmarks/bench_residency.py --quick        # tiny models only (a few seconds)
    python benchmarks/bench_residency.py                # tiny, then mid-size generator
    python benchmarks/bench_residency.py --size mid --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

PROMPT_STEPS = {"tiny": dict(num_frames=8, num_steps=2, height=32, width=32),
                "mid": dict(num_frames=4, num_steps=2, height=64, width=64)}
WAIT = 900  # seconds a panel job may take before the benchmark gives up


def make_video(path: Path) -> Path:
    """A 2-second 64x64 test video (moving colour gradient), encoded by the project's own encoder."""
    from vid2vid_widgets import video

    t = np.arange(16)[:, None, None]
    y, x = np.mgrid[0:64, 0:64]
    channels = [(x * 4 + t * 8) % 256, np.broadcast_to((y * 4) % 256, (16, 64, 64)), (x + y + t * 16) % 256]
    video.encode_mp4(np.stack(channels, axis=-1).astype(np.uint8), 8, path)
    return path


def build_mid_text_to_video(folder: Path) -> Dict[str, int]:
    """A mid-size random generator in the ali-vilab layout; returns parameter counts.

    UNet3D at 40% of the real widths (128/256/512/512, 2 layers per block, the real block types), the
    real Stable Diffusion VAE, a 6-layer width-512 CLIP text encoder; tokenizer and scheduler from the
    tiny model (its vocabulary sets the text encoder's table size).
    """
    import torch
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vid2vid_widgets.tiny.text_to_video import build as build_tiny_text_to_video

    tiny = folder / "_tiny"
    build_tiny_text_to_video(tiny)
    for part in ("tokenizer", "scheduler"):
        shutil.copytree(tiny / part, folder / part)
    shutil.copy(tiny / "model_index.json", folder / "model_index.json")
    vocab_size = len(json.loads((tiny / "tokenizer" / "vocab.json").read_text()))
    ids = json.loads((tiny / "text_encoder" / "config.json").read_text())
    shutil.rmtree(tiny)

    torch.manual_seed(0)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=512, intermediate_size=2048, num_hidden_layers=6, num_attention_heads=8,
        max_position_embeddings=77, projection_dim=512, hidden_act="gelu",
        bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"], pad_token_id=ids["pad_token_id"]))
    unet = UNet3DConditionModel(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                                cross_attention_dim=512, attention_head_dim=64)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4)
    counts = {}
    for name, model in (("text_encoder", text), ("unet", unet), ("vae", vae)):
        model.save_pretrained(folder / name)
        counts[name] = sum(p.numel() for p in model.parameters())
    return counts


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Table:
    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: List[Dict[str, Any]] = []

    def add(self, step: str, seconds: float, load_s: float, loads: int, extra: str = "") -> None:
        self.rows.append(dict(step=step, seconds=seconds, load_s=load_s, loads=loads, extra=extra))
        print(f"  {step:<44} {seconds:8.2f} s   load {load_s:7.2f} s   REGISTRY.total_loads={loads}"
              + (f"   {extra}" if extra else ""), flush=True)

    def print(self, baseline_step: str, loads_after_first: int) -> bool:
        base = next(r["seconds"] for r in self.rows if r["step"] == baseline_step)
        print(f"\n{self.title}")
        print(f"  {'step':<44} {'seconds':>8} {'x 2nd run':>10} {'load s':>8} {'total loads':>12}")
        for r in self.rows:
            print(f"  {r['step']:<44} {r['seconds']:8.2f} {r['seconds'] / base:10.2f} {r['load_s']:8.2f} "
                  f"{r['loads']:12d}")
        extra = self.rows[-1]["loads"] - loads_after_first
        met = extra == 0
        print(f"  loads after the first run: {extra}  -> target (zero) {'MET' if met else 'NOT MET'}")
        return met


def scenario(label: str, out: Path, clip: Path, settings: Dict[str, Any], repeats: int,
             generator_model: Optional[str] = None) -> bool:
    from vid2vid_widgets.models import REGISTRY
    from vid2vid_widgets.panel import Vid2VidPanel
    from vid2vid_widgets.pipeline import Vid2VidPipeline

    REGISTRY.unload()  # each scenario starts with nothing resident
    start_loads = REGISTRY.total_loads
    caption_frames = 4
    extra_kwargs = {"generator_model": generator_model} if generator_model else {}
    table = Table(f"{label}: {settings['num_frames']} frames {settings['width']}x{settings['height']}, "
                  f"{settings['num_steps']} steps, {caption_frames} caption frames")
    print(f"\n{table.title}", flush=True)

    def pipeline_run(p: Vid2VidPipeline) -> tuple:
        started = time.perf_counter()
        captioned = p.caption(clip, num_frames=caption_frames)
        result = p.generate(captioned.caption, seed=0)
        took = time.perf_counter() - started
        load = captioned.timings["load_captioner"] + result.timings["load_generator"]
        return took, load

    def loads() -> int:
        return REGISTRY.total_loads - start_loads

    a = Vid2VidPipeline(models="tiny", output_dir=out / "a", caption_frames=caption_frames, **extra_kwargs,
                        **settings)
    took, load = pipeline_run(a)
    table.add("1. pipeline A, first run (loads models)", took, load, loads())
    first_loads = loads()

    seconds, load_times = [], []
    for _ in range(repeats):
        took, load = pipeline_run(a)
        seconds.append(took)
        load_times.append(load)
    table.add("2. pipeline A, second run", statistics.median(seconds), statistics.median(load_times), loads(),
              f"(median of {repeats}: {', '.join(f'{s:.2f}' for s in seconds)})" if repeats > 1 else "")

    b = Vid2VidPipeline(models="tiny", output_dir=out / "b", caption_frames=caption_frames, **extra_kwargs,
                        **settings)
    took, load = pipeline_run(b)
    table.add("3. pipeline B (new object), first run", took, load, loads())

    for n in (1, 2):
        panel_kwargs = dict(settings, output_dir=out / f"panel{n}", caption_frames=caption_frames, seed=0)
        if generator_model:
            panel_kwargs["generator_model"] = generator_model
        panel = Vid2VidPanel(models="tiny", autocaption=True, **panel_kwargs)
        panel.random_seed.value = False
        started = time.perf_counter()
        panel.load(str(clip))  # loads, previews and captions (autocaption), as a person's Load click
        if not panel.wait(WAIT) or panel.last_error is not None:
            raise SystemExit(f"panel {n} load/caption failed: {panel.last_error!r}")
        panel.generate()
        if not panel.wait(WAIT) or panel.last_error is not None or panel.last_result is None:
            raise SystemExit(f"panel {n} generate failed: {panel.last_error!r}")
        took = time.perf_counter() - started
        load = (panel.caption_result.timings["load_captioner"] + panel.last_result.timings["load_generator"])
        table.add(f"{3 + n}. panel {n}, first load+caption+generate", took, load, loads())
    return table.print("2. pipeline A, second run", first_loads)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models only, one repeat")
    parser.add_argument("--size", choices=("tiny", "mid", "both"), default=None,
                        help="which generator: tiny, mid-size random, or both (default: both; tiny with --quick)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="second runs timed (median); default 3, 1 with --quick")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: 1 for the tiny models, whose work is too small to share "
                             "out; torch's choice for the mid-size one)")
    args = parser.parse_args(argv)
    size = args.size or ("tiny" if args.quick else "both")
    repeats = args.repeats or (1 if args.quick else 3)

    import torch

    default_threads = torch.get_num_threads()

    def threads(scenario_size: str) -> int:
        torch.set_num_threads(args.threads or (1 if scenario_size == "tiny" else default_threads))
        return torch.get_num_threads()

    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    work = Path(tempfile.mkdtemp(prefix="bench-residency-"))
    # Tiny models are built into a temporary folder, never the user's cache, and before any timing.
    os.environ.setdefault("VID2VID_TINY_MODELS", str(work / "tiny-models"))
    try:
        from vid2vid_widgets._compat import resolve_device
        from vid2vid_widgets.tiny import tiny_model_path

        device, dtype = resolve_device("auto", "auto", warn=False)
        print(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; device {device} {dtype}; "
              f"torch {torch.__version__}; Python {platform.python_version()}")
        started = time.perf_counter()
        tiny_model_path("captioner")
        tiny_model_path("text-to-video")
        print(f"tiny models built in {time.perf_counter() - started:.1f} s (not counted below)")
        clip = make_video(work / "clip.mp4")

        met = True
        if size in ("tiny", "both"):
            label = f"tiny captioner + tiny generator, {threads('tiny')} torch thread(s)"
            met &= scenario(label, work / "out-tiny", clip, PROMPT_STEPS["tiny"], repeats)
        if size in ("mid", "both"):
            folder = work / "mid-t2v"
            started = time.perf_counter()
            counts = build_mid_text_to_video(folder)
            size_mb = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
            print(f"\nmid-size generator built and saved in {time.perf_counter() - started:.1f} s: "
                  + ", ".join(f"{k} {v / 1e6:.0f} M" for k, v in counts.items())
                  + f" parameters, {size_mb:.0f} MB on disk (not counted below)")
            label = f"tiny captioner + mid-size generator, {threads('mid')} torch thread(s)"
            met &= scenario(label, work / "out-mid", clip, PROMPT_STEPS["mid"], repeats, generator_model=str(folder))
        print(f"\npeak RSS {peak_rss_mb():.0f} MB; load average now "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"residency target (no model loads after the first run): {'MET' if met else 'NOT MET'}")
        return 0 if met else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
