"""Per catalogue preset: peak RAM while loading, one denoising step on the CPU, and the download size.

Free Colab has about 12.7 GB of system RAM; loading a preset must stay under 6 GB. No weights can be
downloaded here, so each preset's architecture is built at full size with random weights (the
published configs, through the ``vid2vid_widgets.tiny`` builders), saved as fp16 safetensors in the
real folder layout, and loaded through OUR loader (``catalogue.make_generator``, the same code path
as the hub ids) in a fresh subprocess whose peak RSS is read from the kernel (ru_maxrss).

Then, in another subprocess, one denoising step at the preset's default size and steps schedule
(frames capped by --frames on this CPU, said in the output) in fp32, as a CPU user would run it.

modelscope-1.7b and zeroscope-576w share one architecture: one folder serves both. The original
ModelScope checkpoint (fp32 pickles through the modelscope package) is not measured here: see
bench_gpu.py. Disk: a full-size folder is 2-4 GB; each is deleted before the next is built.

    python benchmarks/bench_presets.py                 # full size (minutes; about 4 GB of free disk)
    python benchmarks/bench_presets.py --quick         # tiny sizes: checks that the script runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

GB = 1e9
TARGET_GB = 6.0
PROMPT = "a red car driving on a street at night"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gpu import T2V_SIZES  # noqa: E402  (the published ModelScope 1.7B sizes, shared)

# Published Stable Diffusion 1.5 sizes (stable-diffusion-v1-5's unet/vae/text_encoder config.json);
# UNet2DConditionModel's and MotionAdapter()'s own defaults supply the rest (AnimateDiff v2's adapter).
SD15_SIZES = {
    "full": dict(
        unet=dict(cross_attention_dim=768, attention_head_dim=8, sample_size=64),
        vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512),
        text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  projection_dim=768, hidden_act="quick_gelu"),
        adapter={},
        vocab_size=49408,
    ),
    "quick": dict(vocab_size=1000),
}
# Which folder (builder) each measured preset loads from.
FAMILIES = {"diffusers": "text_to_video", "animatediff": "animatediff"}


def build(family: str, folder: str, quick: bool) -> Dict[str, int]:
    """Write a random-weight model of ``family`` into ``folder`` (fp16 files only); return parameter counts."""
    from vid2vid_widgets.tiny import animatediff, text_to_video

    table = SD15_SIZES if family == "animatediff" else {**T2V_SIZES, "quick": T2V_SIZES["smoke"]}
    sizes = dict(table["quick" if quick else "full"])
    builder = animatediff.build if family == "animatediff" else text_to_video.build
    return builder(folder, save_dtypes=("float16",), **sizes)


def child(mode: str, preset_name: str, folder: str, frames: int, side: int) -> None:
    """In a fresh process: load the preset from ``folder`` (and run one step); print one JSON line.

    ``side`` > 0 replaces the preset's default size by side x side (--quick: tiny models need no 512 px).
    """
    import torch  # noqa: F401  (imported before the baseline: every real process has it)

    from vid2vid_widgets import catalogue
    from vid2vid_widgets.generation import make_generator

    baseline = _memory_gb("VmRSS")
    preset = catalogue.generator_preset(preset_name)
    # The fp16 files, as on a T4; the step runs in fp32 on the CPU (fp16 kernels are missing or slow there).
    dtype = "float16" if mode == "load" else "float32"
    model_id, options = catalogue.folder_arguments(preset, folder)
    started = time.perf_counter()
    generator = make_generator(preset.backend, model_id, device="cpu", dtype=dtype, **{**options, "variant": "fp16"})
    generator.load()
    out: Dict[str, Any] = {"load_s": time.perf_counter() - started, "imports_rss_gb": baseline,
                           "peak_rss_gb": _memory_gb("VmHWM")}
    if mode == "load":
        # The safetensors files are memory-mapped: a weight is read only when used. Moving the model
        # to a GPU reads every one once; reading them here gives that worst case (page cache included).
        components = generator._components()
        for module in (components.text_encoder, components.unet, components.vae):
            for tensor in (*module.parameters(), *module.buffers()):
                float(tensor.max())  # reads every value, no copy
        out["read_all_rss_gb"] = _memory_gb("VmHWM")
    if mode == "step":
        defaults = preset.settings()
        settings = defaults.replace(prompt=PROMPT, seed=0, num_steps=1, num_frames=min(frames, defaults.num_frames))
        if side:
            settings = settings.replace(width=side, height=side)
        result = generator.generate(settings)
        out.update(step_s=result.timings["denoise"], decode_s=result.timings["decode"],
                   frames=settings.num_frames, size=f"{settings.width}x{settings.height}",
                   guidance=settings.guidance_scale > 1, steps_default=defaults.num_steps)
    print("RESULT " + json.dumps(out))


def _memory_gb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in GB.

    Not getrusage's ru_maxrss: Linux keeps that across fork and exec, so a child of the (large)
    process that built the model would report its parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / GB
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def run_child(mode: str, preset: str, folder: str, frames: int, side: int) -> Dict[str, Any]:
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, preset, folder, str(frames),
                           str(side)],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds): checks the script")
    parser.add_argument("--frames", type=int, default=None,
                        help="cap the frames of the CPU step (default: 2; a full-size step is minutes per frame batch)")
    parser.add_argument("--no-step", action="store_true", help="only the loading RAM and the download sizes")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "PRESET", "FOLDER", "FRAMES", "SIDE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, preset, folder, frames, side = args.child
        child(mode, preset, folder, int(frames), int(side))
        return 0

    import platform

    from vid2vid_widgets import catalogue

    frames = args.frames or 2
    side = 64 if args.quick else 0  # tiny models: the plumbing at 64x64, not the preset's size
    scale = "tiny (--quick)" if args.quick else "full-size random weights"
    print(f"bench_presets: {scale}; machine {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; RAM target while loading: < {TARGET_GB:g} GB")
    print(f"free disk in {tempfile.gettempdir()}: {shutil.disk_usage(tempfile.gettempdir()).free / GB:.1f} GB")
    rows = []
    for family in ("text_to_video", "animatediff"):
        presets = [p for p in catalogue.GENERATORS if FAMILIES.get(p.backend) == family]
        folder = tempfile.mkdtemp(prefix=f"bench-presets-{family}-")
        try:
            started = time.perf_counter()
            counts = build(family, folder, args.quick)
            on_disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
            print(f"\n{family}: built in {time.perf_counter() - started:.0f} s, {sum(counts.values()) / 1e6:,.0f} M "
                  f"parameters ({', '.join(f'{k} {v / 1e6:,.1f} M' for k, v in counts.items())}), "
                  f"{on_disk / GB:.2f} GB of fp16 files on disk")
            for preset in presets:
                row: Dict[str, Any] = {"preset": preset.name, "download_gb": preset.download_bytes / GB}
                row.update(run_child("load", preset.name, folder, frames, side))
                if not args.no_step and "error" not in row:
                    step = run_child("step", preset.name, folder, frames, side)
                    row.update({k: v for k, v in step.items() if k != "peak_rss_gb"}, step_rss_gb=step.get("peak_rss_gb"))
                rows.append(row)
                print("  " + json.dumps(row))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    skipped = [p.name for p in catalogue.GENERATORS if p.backend not in FAMILIES]
    print(f"\nnot measured here: {', '.join(skipped)} (fp32 pickles through the modelscope package; see bench_gpu.py)")
    print(f"\n{'preset':<24}{'download':>10}{'RAM after imports':>19}{'load RAM peak':>15}{'+ every weight read':>21}"
          f"{'load':>8}{'1 step (CPU)':>14}  at")
    for row in rows:
        if "error" in row:
            print(f"{row['preset']:<24}{row['download_gb']:>8.2f} GB  [{row['error']}]")
            continue
        step = f"{row['step_s']:.1f} s" if "step_s" in row else "-"
        at = (f"{row['frames']} frames of {row['size']}{' x2 (guidance)' if row['guidance'] else ''}, default "
              f"{row['steps_default']} steps" if "step_s" in row else "")
        print(f"{row['preset']:<24}{row['download_gb']:>8.2f} GB{row['imports_rss_gb']:>16.2f} GB"
              f"{row['peak_rss_gb']:>12.2f} GB{row['read_all_rss_gb']:>18.2f} GB{row['load_s']:>7.1f} s{step:>14}  {at}")
    worst = max((r["read_all_rss_gb"] for r in rows if "read_all_rss_gb" in r), default=float("nan"))
    met = all("read_all_rss_gb" in r and r["read_all_rss_gb"] < TARGET_GB for r in rows)
    print(f"\nloading RAM target (< {TARGET_GB:g} GB for every preset, every weight read): "
          f"{'MET' if met else 'NOT MET'} (worst {worst:.2f} GB){' [tiny sizes: not the real figure]' if args.quick else ''}")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
