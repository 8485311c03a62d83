"""A tiny random AnimateDiff model: a Stable Diffusion 1.5 folder plus motion adapters, as the real ones.

The base folder has the layout of ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (unet/ holding a
``UNet2DConditionModel``, vae/, text_encoder/, tokenizer/, scheduler/ with SD 1.5's scheduler
config) built by ``tiny.text_to_video`` with a 2D UNet. Beside them:

* ``motion_adapter/``: a ``MotionAdapter`` saved with ``save_pretrained``, the layout of
  ``guoyww/animatediff-motion-adapter-v1-5-2`` (the "animatediff" preset);
* ``lightning/``: one safetensors file named like AnimateDiff-Lightning's 4-step adapter plus a
  config.json (the real repo has none and uses ``MotionAdapter()``'s full-size architecture; a tiny
  one must say its sizes), for the "animatediff-lightning" preset.

Sizes follow diffusers' own AnimateDiff tests (``tests/pipelines/animatediff``), smaller still.
Nothing is downloaded: the tokenizer is the hand-written one of ``tiny.text_to_video``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Union

from .text_to_video import SEED, TINY_TEXT, TINY_VAE
from .text_to_video import build as build_base

LIGHTNING_FILE = "animatediff_lightning_4step_diffusers.safetensors"

TINY_UNET2D: Mapping[str, Any] = MappingProxyType(dict(
    sample_size=4,
    block_out_channels=(8, 16),
    layers_per_block=2,  # must equal the adapter's motion_layers_per_block
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=TINY_TEXT["hidden_size"],
    attention_head_dim=4,
    norm_num_groups=2,
))
TINY_ADAPTER: Mapping[str, Any] = MappingProxyType(dict(
    block_out_channels=(8, 16),
    motion_layers_per_block=2,
    motion_norm_num_groups=2,
    motion_num_attention_heads=4,
))
# stable-diffusion-v1-5's scheduler/scheduler_config.json (PNDM, scaled-linear betas); the presets
# override the betas and spacing with AnimateDiff's recipe.
SD15_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


def build(
    folder: Union[str, Path],
    *,
    unet: Mapping[str, Any] = TINY_UNET2D,
    adapter: Mapping[str, Any] = TINY_ADAPTER,
    vae: Mapping[str, Any] = TINY_VAE,
    text: Mapping[str, Any] = TINY_TEXT,
    **base_options: Any,
) -> Dict[str, int]:
    """Write the base model and both adapters into ``folder``; return each component's parameter count.

    Given the published sizes (and ``vocab_size``, ``save_dtypes``, ``device`` for the base), the
    same function writes a full-size random AnimateDiff model (``benchmarks/bench_presets.py``).
    """
    import torch
    from diffusers import MotionAdapter, UNet2DConditionModel
    from safetensors.torch import save_file

    import diffusers

    folder = Path(folder)
    counts = build_base(folder, unet=unet, vae=vae, text=text, unet_class=UNet2DConditionModel, **base_options)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({**SD15_SCHEDULER_CONFIG, "_diffusers_version": diffusers.__version__}, indent=2) + "\n",
        encoding="utf-8")
    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n", encoding="utf-8")

    save_dtypes = base_options.get("save_dtypes", ("float16", "float32"))
    device = base_options.get("device", "cpu")
    for offset, name in enumerate(("motion_adapter", "lightning")):
        torch.manual_seed(SEED + 10 + offset)  # two different adapters, each the same on every build
        with torch.device(device):
            model = MotionAdapter(**adapter)
        counts[name] = sum(p.numel() for p in model.parameters())
        if name == "motion_adapter":
            for dtype in save_dtypes:
                variant = "fp16" if dtype == "float16" else None
                model.to(dtype=getattr(torch, dtype)).save_pretrained(folder / name, variant=variant)
        else:
            (folder / name).mkdir(exist_ok=True)
            # Like the real file: fp16 tensors in one safetensors file; the config says the tiny sizes.
            state = {k: v.to(torch.float16).contiguous().cpu() for k, v in model.state_dict().items()}
            save_file(state, str(folder / name / LIGHTNING_FILE))
            (folder / name / "config.json").write_text(json.dumps(dict(model.config), indent=2, default=list) + "\n",
                                                      encoding="utf-8")
        del model
    return counts


__all__ = ["build", "TINY_UNET2D", "TINY_ADAPTER", "LIGHTNING_FILE", "SD15_SCHEDULER_CONFIG"]
