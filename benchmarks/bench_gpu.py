"""GPU speed and memory of the real architectures (random weights), both models resident.

Needs CUDA: elsewhere it prints why it skipped and exits 0. No weights are downloaded: every model is
built from its published architecture with random weights, saved into a temporary folder in the
layout of the real checkpoint, and loaded back through the project's own loaders, so the measured
path is the real one (registry, ``DiffusersTextToVideo``, ``ModelScopeTextToVideo``, ``BlipCaptioner``).
Speed and memory do not depend on the weights' values.

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
import json
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

# Architecture sizes: "full" is the published one, "smoke" a tiny stand-in for --cpu-smoke.
T2V_SIZES = {
    "full": dict(
        unet=dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
                  attention_head_dim=64),
        vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2),
        text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                  projection_dim=512, vocab_size=49408),
    ),
    "smoke": dict(
        unet=dict(block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=16, attention_head_dim=4,
                  norm_num_groups=4, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                  up_block_types=("UpBlock3D", "CrossAttnUpBlock3D")),
        vae=dict(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=2),
        text=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                  projection_dim=16, vocab_size=1000),
    ),
}
BLIP_SIZES = {
    "full": dict(vision=None, text=None, vocab_size=30524, image_size=384),  # BlipConfig() defaults = base
    "smoke": dict(vision=dict(hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=2,
                              num_attention_heads=4, image_size=32, patch_size=8),
                  text=dict(hidden_size=32, encoder_hidden_size=32, intermediate_size=64, projection_dim=32,
                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64),
                  vocab_size=1000, image_size=32),
}
# damo/text-to-video-synthesis's published configuration.json (model part); "smoke" uses the tiny one.
MODELSCOPE_MODEL_CFG = {
    "unet_in_dim": 4, "unet_dim": 320, "unet_y_dim": 768, "unet_context_dim": 1024, "unet_out_dim": 4,
    "unet_dim_mult": [1, 2, 4, 4], "unet_num_heads": 8, "unet_head_dim": 64, "unet_res_blocks": 2,
    "unet_attn_scales": [1, 0.5, 0.25], "unet_dropout": 0.1, "temporal_attention": "True", "num_timesteps": 1000,
    "mean_type": "eps", "var_type": "fixed_small", "loss_type": "mse",
}


# -- building random-weight folders in the real layouts ------------------------------------------


def _padded(vocab: Dict[str, int], size: int, filler: str) -> Dict[str, int]:
    """``vocab`` grown to ``size`` entries with unused filler tokens, so the table sizes are the real ones."""
    vocab = dict(vocab)
    i = 0
    while len(vocab) < size:
        vocab.setdefault(filler.format(i), len(vocab))
        i += 1
    return vocab


def build_t2v_folder(folder: Path, size: str, device: str, save_dtype) -> Dict[str, int]:
    """UNet3D, VAE, CLIP text encoder, tokenizer and scheduler in the ali-vilab/text-to-video-ms-1.7b layout.

    Built on ``device`` (random init of 1.4 B parameters is seconds on a GPU, minutes on a CPU), saved
    in ``save_dtype``: as the "fp16" variant when that is float16, like the files fetched on CUDA.
    """
    import diffusers
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from vid2vid_widgets.tiny.text_to_video import SCHEDULER_CONFIG, tiny_vocab_and_merges

    sizes = T2V_SIZES[size]
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_vocab_and_merges()
    vocab = _padded(vocab, sizes["text"]["vocab_size"], "<|unused{}|>")
    tok_dir = folder / "tokenizer"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tok_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>"}
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, **specials}))
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    if len(tokenizer) != len(vocab):
        raise RuntimeError(f"tokenizer reloads with {len(tokenizer)} tokens, expected {len(vocab)}")

    variant = "fp16" if save_dtype == torch.float16 else None
    counts: Dict[str, int] = {}
    torch.manual_seed(0)
    with torch.device(device):
        text_kwargs = dict(sizes["text"])
        text = CLIPTextModel(CLIPTextConfig(
            max_position_embeddings=77, hidden_act="gelu", bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"], **text_kwargs))
        counts["text_encoder"] = _save(text, folder / "text_encoder", save_dtype, variant)
        del text
        counts["unet"] = _save(UNet3DConditionModel(**sizes["unet"]), folder / "unet", save_dtype, variant)
        vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            latent_channels=4, **sizes["vae"])
        counts["vae"] = _save(vae, folder / "vae", save_dtype, variant)
    DDIMScheduler.from_config({k: v for k, v in SCHEDULER_CONFIG.items() if k != "_class_name"}).save_pretrained(
        folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "TextToVideoSDPipeline", "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}, indent=2))
    _free()
    return counts


def _save(model, path: Path, dtype, variant: Optional[str]) -> int:
    params = sum(p.numel() for p in model.parameters())
    model.to(dtype=dtype).save_pretrained(path, variant=variant)
    del model
    _free()
    return params


def build_blip_folder(folder: Path, size: str, device: str) -> int:
    """A BLIP captioner (model + processor) of the base size ("full") in the blip-image-captioning layout.

    The BERT vocabulary is grown to the model's table size with unused tokens, so generated ids all decode.
    """
    import torch
    from transformers import (BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor,
                              BlipProcessor)

    from vid2vid_widgets.tiny.blip import tiny_blip_vocab

    sizes = BLIP_SIZES[size]
    vocab = _padded(tiny_blip_vocab(), sizes["vocab_size"] - 1, "[unused{}]")  # [DEC] is the last one
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=512)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    processor = BlipProcessor(image_processor=BlipImageProcessor(
        size={"height": sizes["image_size"], "width": sizes["image_size"]}), tokenizer=tokenizer)
    text_config = dict(sizes["text"] or {}, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                       pad_token_id=tokenizer.pad_token_id, sep_token_id=tokenizer.sep_token_id,
                       eos_token_id=tokenizer.sep_token_id)
    extra = {} if size == "full" else {"projection_dim": 32, "image_text_hidden_size": 32}
    config = BlipConfig(vision_config=sizes["vision"], text_config=text_config, **extra)
    torch.manual_seed(0)
    with torch.device(device):
        model = BlipForConditionalGeneration(config).eval()
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model
    _free()
    return params


def build_modelscope_folder(folder: Path, size: str) -> Dict[str, int]:
    """A damo/text-to-video-synthesis folder (configuration.json + the three checkpoints), random weights.

    "full": the published configuration and open_clip's own ViT-H-14; "smoke": the tiny configuration
    and tiny ViT-H-14 of ``tiny.modelscope``. Weights are small strided views (the tiny builder's
    trick), so the files stay small while the loaded tensors have the full shapes.
    """
    import copy

    import open_clip
    import torch
    from modelscope.models.multi_modal.video_synthesis.autoencoder import AutoencoderKL
    from modelscope.models.multi_modal.video_synthesis.unet_sd import UNetSD

    from vid2vid_widgets.tiny import modelscope as tiny

    folder.mkdir(parents=True, exist_ok=True)
    configuration = copy.deepcopy(tiny.TINY_CONFIGURATION)
    if size == "full":
        configuration["model"]["model_cfg"] = dict(MODELSCOPE_MODEL_CFG)
        clip_cfg = open_clip.get_model_config("ViT-H-14")
    else:
        clip_cfg = tiny.TINY_VIT_H_14
        (folder / tiny.TINY_CONFIG_DIR).mkdir(exist_ok=True)
        (folder / tiny.TINY_CONFIG_DIR / "ViT-H-14.json").write_text(json.dumps(clip_cfg))
    (folder / "configuration.json").write_text(json.dumps(configuration, indent=2))
    cfg = configuration["model"]["model_cfg"]
    generator = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        unet = UNetSD(in_dim=cfg["unet_in_dim"], dim=cfg["unet_dim"], y_dim=cfg["unet_y_dim"],
                      context_dim=cfg["unet_context_dim"], out_dim=cfg["unet_out_dim"], dim_mult=cfg["unet_dim_mult"],
                      num_heads=cfg["unet_num_heads"], head_dim=cfg["unet_head_dim"],
                      num_res_blocks=cfg["unet_res_blocks"], attn_scales=cfg["unet_attn_scales"],
                      dropout=cfg["unet_dropout"], temporal_attention=cfg["temporal_attention"] == "True")
        vae = AutoencoderKL(tiny._VAE_DDCONFIG, 4)
        clip = open_clip.model.CLIP(embed_dim=clip_cfg["embed_dim"], vision_cfg=clip_cfg["vision_cfg"],
                                    text_cfg=clip_cfg["text_cfg"])
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in (("unet", unet), ("vae", vae))}
    counts["clip_text"] = sum(p.numel() for n, p in clip.named_parameters() if not n.startswith("visual."))
    torch.save(tiny._tiny_state_dict(unet, generator), folder / tiny.CKPT_UNET)
    vae_state = tiny._tiny_state_dict(vae, generator)
    torch.save({"state_dict": {f"first_stage_model.{k}": v for k, v in vae_state.items()}},
               folder / tiny.CKPT_AUTOENCODER)
    torch.save(tiny._tiny_state_dict(clip, generator), folder / tiny.CKPT_CLIP)
    return counts


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
        save_dtype = torch.float16 if dtype == "float16" else torch.float32
        t2v_counts = build_t2v_folder(work / "t2v", size_name, device, save_dtype)
        blip_params = build_blip_folder(work / "blip", size_name, device)
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
                started = time.perf_counter()
                counts = build_modelscope_folder(work / "modelscope", size_name)
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
