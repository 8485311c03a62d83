"""GPU speed and memory of the real architectures (random weights), both models resident.

Needs CUDA: elsewhere it prints why it skipped and exits 0. No weights are downloaded: every model is
built from its published architecture with random weights (by the builders of ``vid2vid_widgets.tiny``,
given the published sizes), saved into a temporary folder in the layout of the real checkpoint, and
loaded back through the project's own loaders, so the measured path is the real one (registry,
``DiffusersTextToVideo``, ``ModelScopeTextToVideo``, ``BlipCaptioner``). Speed and memory do not
depend on the weights' values.

  * captioner: BLIP base (``BlipConfig()`` sizes, 224 M parameters), fp16, loaded first and kept
    resident for every row, so each row's peak is "both models resident";
  * diffusers backend (the default): ``ali-vilab/text-to-video-ms-1.7b``'s UNet3D (320/640/1280/1280,
    2 layers per block, cross-attention 1024, head dim 64; 1.41 B), the SD VAE and a 23-layer width-1024
    CLIP text encoder, saved as fp16 files (the "fp16" variant, as downloaded on CUDA) and run in fp16:
    with VAE slicing (8 frames a call, the default), without it, and with CPU offload;
  * modelscope backend (``damo/text-to-video-synthesis``), fp32, when the [modelscope] extra is installed:
    the published configuration.json and open_clip's ViT-H-14.

Rows: seconds per denoising step (``--steps`` steps, classifier-free guidance, batch 2), VAE decode
seconds, peak ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` during the run, and what
was allocated before it (resident weights). Target: 16 frames at 256x256 with both models resident
under 8 GB (diffusers backend, fp16, default options).

    python benchmarks/bench_gpu.py                       # on a CUDA machine; < 8 minutes on an H100
    python benchmarks/bench_gpu.py --frames 16 --steps 3 --skip-modelscope
    python benchmarks/bench_gpu.py --cpu-smoke           # same code path, tiny sizes, on the CPU
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

GB = 1e9
TARGET_GB = 8.0
PROMPT = "a red car driving on a street at night"

# Architecture sizes, passed to the builders of ``vid2vid_widgets.tiny``: "full" is the published one,
# "smoke" (for --cpu-smoke) the builders' tiny defaults, with vocabularies padded so that path runs too.
T2V_SIZES = {
    "full": dict(
        unet=dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
                  attention_head_dim=64),
        vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2),
        text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                  projection_dim=512, hidden_act="gelu"),
        vocab_size=49408,
    ),
    "smoke": dict(vocab_size=1000),
}
BLIP_SIZES = {
    "full": dict(vision={}, text={}, projection={}, vocab_size=30524),  # BlipConfig() defaults = base
    "smoke": dict(vocab_size=1000),
}
# damo/text-to-video-synthesis's published configuration.json (model part) and open_clip's own ViT-H-14.
MODELSCOPE_SIZES = {
    "full": dict(
        model_cfg={
            "unet_in_dim": 4, "unet_dim": 320, "unet_y_dim": 768, "unet_context_dim": 1024, "unet_out_dim": 4,
            "unet_dim_mult": [1, 2, 4, 4], "unet_num_heads": 8, "unet_head_dim": 64, "unet_res_blocks": 2,
            "unet_attn_scales": [1, 0.5, 0.25], "unet_dropout": 0.1, "temporal_attention": "True",
            "num_timesteps": 1000, "mean_type": "eps", "var_type": "fixed_small", "loss_type": "mse",
        },
        clip_cfg=None,
    ),
    "smoke": {},
}


# -- measuring ------------------------------------------------------------------------------------


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Meter:
    """Peak memory of one measured stretch: CUDA allocator peaks on a GPU, process peak RSS on a CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def allocated(self) -> float:
        import torch

        return torch.cuda.memory_allocated() / GB if self.cuda else float("nan")

    def start(self) -> None:
        import torch

        _free()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peaks(self) -> Dict[str, float]:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return {"peak_alloc": torch.cuda.max_memory_allocated() / GB,
                    "peak_reserved": torch.cuda.max_memory_reserved() / GB}
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB
        return {"peak_alloc": float("nan"), "peak_reserved": float("nan"), "peak_rss": rss}


def measure_generation(generator, meter: Meter, label: str, frames: int, size: int, steps: int,
                       scheduler: str) -> Dict[str, Any]:
    from vid2vid_widgets.errors import GPUOutOfMemoryError
    from vid2vid_widgets.generation.base import GenerationSettings

    settings = GenerationSettings(prompt=PROMPT, negative_prompt="blurry, low quality", seed=0, num_frames=frames,
                                  num_steps=steps, height=size, width=size, scheduler=scheduler)
    row: Dict[str, Any] = {"config": label, "frames": frames, "size": size}
    meter.start()
    row["resident"] = meter.allocated()
    started = time.perf_counter()
    try:
        result = generator.generate(settings)
    except GPUOutOfMemoryError:
        row.update(meter.peaks(), error="out of memory")
        _free()
        return row
    except Exception as exc:  # a row that fails is reported, the others still run
        row.update(error=f"{type(exc).__name__}: {str(exc)[:120]}")
        traceback.print_exc()
        _free()
        return row
    row["total"] = time.perf_counter() - started
    row.update(meter.peaks())
    row["per_step"] = result.timings["denoise"] / steps
    row["decode"] = result.timings.get("decode", float("nan"))
    row["shape"] = tuple(result.frames.shape)
    del result
    return row


def warm_up(generator, size: int, frames: int, scheduler: str) -> None:
    """One 1-step run: loads the model, initialises cuBLAS/cuDNN, so rows time only steady-state work."""
    from vid2vid_widgets.generation.base import GenerationSettings

    generator.generate(GenerationSettings(prompt=PROMPT, seed=0, num_frames=frames, num_steps=1, height=size,
                                          width=size, scheduler=scheduler))


def fmt(value: Any, spec: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def print_table(rows: List[Dict[str, Any]], cuda: bool) -> None:
    mem = "GB" if cuda else "GB RSS"
    head = (f"{'backend / options':<46} {'frames':>6} {'size':>5} {'s/step':>8} {'decode s':>9} "
            f"{'resident GB':>11} {'peak alloc GB':>13} {'peak reserved GB':>16}")
    print("\n" + head)
    print("-" * len(head))
    for r in rows:
        if not cuda and "peak_rss" in r:
            peak_alloc, peak_reserved = f"{r['peak_rss']:.2f} {mem}", "-"
        else:
            peak_alloc, peak_reserved = fmt(r.get("peak_alloc")), fmt(r.get("peak_reserved"))
        line = (f"{r['config']:<46} {r['frames']:>6} {r['size']:>5} {fmt(r.get('per_step'), '.3f'):>8} "
                f"{fmt(r.get('decode'), '.3f'):>9} {fmt(r.get('resident')):>11} {peak_alloc:>13} {peak_reserved:>16}")
        if r.get("error"):
            line += f"  [{r['error']}]"
        print(line)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run the same code path with tiny sizes on the CPU (tests the script, measures nothing)")
    parser.add_argument("--frames", default=None, help="comma-separated frame counts (default 16,24,64; smoke 4,8)")
    parser.add_argument("--size", type=int, default=None, help="height and width (default 256; smoke 32)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps per row (default 5; smoke 2)")
    parser.add_argument("--caption-frames", type=int, default=6, help="frames captioned in one batch (default 6)")
    parser.add_argument("--skip-modelscope", action="store_true", help="leave out the modelscope backend")
    parser.add_argument("--skip-offload", action="store_true", help="leave out the CPU-offload rows")
    args = parser.parse_args(argv)

    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print(f"bench_gpu: skipped: no CUDA GPU here (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}, torch.cuda.is_available() is False). Run it on a machine with an "
              "NVIDIA GPU, or use --cpu-smoke to check the script with tiny models on the CPU.")
        return 0

    smoke = args.cpu_smoke
    size_name = "smoke" if smoke else "full"
    device = "cpu" if smoke else "cuda"
    dtype = "float32" if smoke else "float16"
    frames_list = [int(f) for f in (args.frames or ("4,8" if smoke else "16,24,64")).split(",")]
    size = args.size or (32 if smoke else 256)
    steps = args.steps or (2 if smoke else 5)
    if smoke:
        torch.set_num_threads(1)  # tiny models: threads only add contention
    warnings.filterwarnings("ignore", category=FutureWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # "modules that should be kept in float32: []" on every save

    from vid2vid_widgets.captioning import BlipCaptioner
    from vid2vid_widgets.generation.diffusers_t2v import DiffusersTextToVideo
    from vid2vid_widgets.models import REGISTRY
    from vid2vid_widgets.tiny import blip as tiny_blip
    from vid2vid_widgets.tiny import text_to_video as tiny_t2v

    card = torch.cuda.get_device_name() if not smoke else f"CPU ({platform.processor() or platform.machine()})"
    total_mem = f", {torch.cuda.get_device_properties(0).total_memory / GB:.1f} GB" if not smoke else ""
    print(f"bench_gpu{' --cpu-smoke (tiny sizes; figures mean nothing)' if smoke else ''}: {card}{total_mem}; "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}; {os.cpu_count()} CPU cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{steps} steps per row, {size}x{size}, frames {frames_list}, guidance 9 (batch 2)", flush=True)

    meter = Meter(device)
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    rows: List[Dict[str, Any]] = []
    try:
        started = time.perf_counter()
        # Saved in the run's dtype only: as the "fp16" variant on CUDA, like the files fetched there.
        t2v_counts = tiny_t2v.build(work / "t2v", device=device, save_dtypes=(dtype,), **T2V_SIZES[size_name])
        _free()
        blip_params = tiny_blip.build(work / "blip", device=device, **BLIP_SIZES[size_name])
        _free()
        print(f"built random folders in {time.perf_counter() - started:.0f} s: t2v "
              + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in t2v_counts.items())
              + f"; BLIP {blip_params / 1e6:.1f} M parameters", flush=True)

        # The captioner first, resident for every row below.
        meter.start()
        captioner = BlipCaptioner(str(work / "blip"), device=device, dtype=dtype)
        started = time.perf_counter()
        captioner.load()
        load_s = time.perf_counter() - started
        import numpy as np

        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(args.caption_frames)]
        captioner.caption_frames(frames)  # warm-up
        meter.start()
        resident = meter.allocated()
        started = time.perf_counter()
        captioner.caption_frames(frames)
        caption_s = time.perf_counter() - started
        peaks = meter.peaks()
        print(f"BLIP base {dtype}: load {load_s:.1f} s, resident {fmt(resident)} GB; caption {args.caption_frames} "
              f"frames in one batch ({captioner.num_beams} beams, <= {captioner.max_new_tokens} tokens): "
              f"{caption_s:.2f} s, peak {fmt(peaks.get('peak_alloc'))} GB allocated / "
              f"{fmt(peaks.get('peak_reserved'))} GB reserved", flush=True)

        # Diffusers backend: the default options, then no VAE slicing, then CPU offload.
        configs = [("diffusers fp16, VAE slices of 8 (default)", dict(vae_slice_frames=8)),
                   ("diffusers fp16, no VAE slicing", dict(vae_slice_frames=0))]
        if not args.skip_offload:
            configs.append(("diffusers fp16, VAE slices of 8, CPU offload", dict(vae_slice_frames=8, cpu_offload=True)))
        if smoke:
            configs = [(label.replace("fp16", "fp32"), kw) for label, kw in configs]
        loaded_offload: Optional[bool] = None
        for label, options in configs:
            generator = DiffusersTextToVideo(str(work / "t2v"), device=device, dtype=dtype, **options)
            if loaded_offload is not None and loaded_offload != generator.cpu_offload:
                REGISTRY.unload("text-to-video")  # so the offload rows do not count the other copy
            loaded_offload = generator.cpu_offload
            started = time.perf_counter()
            loads_before = REGISTRY.total_loads
            generator.load()
            if REGISTRY.total_loads > loads_before:
                print(f"{label}: loaded in {time.perf_counter() - started:.1f} s", flush=True)
            warm_up(generator, size, min(frames_list), "dpm++")
            for f in frames_list:
                row = measure_generation(generator, meter, label, f, size, steps, "dpm++")
                rows.append(row)
                print(f"  {label}, {f} frames: {fmt(row.get('per_step'), '.3f')} s/step, peak "
                      f"{fmt(row.get('peak_alloc'))} GB{(' [' + row['error'] + ']') if row.get('error') else ''}",
                      flush=True)
        REGISTRY.unload("text-to-video")
        _free()

        # ModelScope original in fp32, when its extra is installed.
        if args.skip_modelscope:
            print("modelscope backend: skipped (--skip-modelscope)")
        else:
            from vid2vid_widgets.errors import MissingDependencyError
            from vid2vid_widgets.generation.modelscope_t2v import ModelScopeTextToVideo

            try:
                ms_generator = ModelScopeTextToVideo(str(work / "modelscope"), device=device, dtype="float32")
            except MissingDependencyError as exc:
                print(f"modelscope backend: skipped: {exc}")
            else:
                from vid2vid_widgets.tiny import modelscope as tiny_modelscope  # needs the extra

                started = time.perf_counter()
                counts = tiny_modelscope.build(work / "modelscope", **MODELSCOPE_SIZES[size_name])
                print(f"modelscope folder built in {time.perf_counter() - started:.0f} s: "
                      + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in counts.items()), flush=True)
                started = time.perf_counter()
                ms_generator.load()
                print(f"modelscope fp32: loaded in {time.perf_counter() - started:.1f} s", flush=True)
                warm_up(ms_generator, size, min(frames_list), "ddim")
                for f in frames_list:
                    row = measure_generation(ms_generator, meter, "modelscope fp32 (original)", f, size, steps, "ddim")
                    rows.append(row)
                    print(f"  modelscope fp32, {f} frames: {fmt(row.get('per_step'), '.3f')} s/step, peak "
                          f"{fmt(row.get('peak_alloc'))} GB", flush=True)
                REGISTRY.unload("modelscope")

        print(f"\n{card}{total_mem}: BLIP base resident in every row; 'resident GB' = allocated before the run "
              "(weights on the GPU)")
        print_table(rows, cuda=not smoke)
        target = next((r for r in rows if r["config"].startswith("diffusers") and "default" in r["config"]
                       and r["frames"] == 16 and r["size"] == 256 and "peak_alloc" in r), None)
        if smoke:
            print("\ntarget (16 frames 256x256, both models resident, < 8 GB): not measured in --cpu-smoke")
        elif target is None or math.isnan(target.get("peak_alloc", float("nan"))):
            print("\ntarget (16 frames 256x256, both models resident, < 8 GB): no such row")
        else:
            met = target["peak_reserved"] < TARGET_GB
            print(f"\ntarget: 16 frames 256x256 with both models resident under {TARGET_GB:.0f} GB: peak "
                  f"{target['peak_alloc']:.2f} GB allocated, {target['peak_reserved']:.2f} GB reserved -> "
                  f"{'MET' if met else 'NOT MET'} (judged on reserved; add ~0.5 GB of CUDA context for nvidia-smi)")
        print(f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0
    finally:
        REGISTRY.unload()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
