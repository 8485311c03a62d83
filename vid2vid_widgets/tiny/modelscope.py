"""A tiny random model folder in the layout of ModelScope's ``damo/text-to-video-synthesis``.

The ``modelscope`` backend is tested through its real loading path: modelscope's own
``TextToVideoSynthesis`` class reads ``configuration.json``, loads the UNet state dict (strict),
the VAE checkpoint ``{"state_dict": {"first_stage_model.<k>": v}}`` (strict) and an open_clip
state dict for an architecture called "ViT-H-14". Three things in that class are not configurable
and shape this builder:

* the VAE's ``ddconfig`` is hard-coded (ch 128, ch_mult 1-2-4-4: about 84 M parameters);
* the text encoder is always open_clip "ViT-H-14" whose token embedding alone is 49408 x 1024;
* the UNet decoder's cross-attention width is hard-coded to 1024.

So the tensors must have the full shapes. To keep the folder a few MB instead of ~320 MB (and the
build well under a second), every large weight is saved as an *overlapping strided view* of a
small random vector: row ``i`` of a weight is the window ``pool[i*stride : i*stride + row_len]``.
``torch.save`` stores only the small pool plus the strides; loading (``load_state_dict`` copies)
gives ordinary dense tensors whose rows are distinct (shifted) random vectors. Norm layers get
ones/zeros and weights are scaled by 1/sqrt(fan_in), so activations stay in a sane range and the
prompt, seed and guidance visibly change the output.

A tiny "ViT-H-14" config (text width 1024 as the UNet requires, 2 layers, a tiny vision tower) is
written to ``open_clip_config/ViT-H-14.json``; the backend registers it with
``open_clip.add_model_config`` only while it loads such a folder (the real checkpoint uses the
ViT-H-14 config that open_clip ships).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Union

# the folder the backend looks for to register a folder's own (tiny) ViT-H-14
from ..generation.modelscope_t2v import TINY_CONFIG_DIR

CKPT_CLIP = "open_clip_pytorch_model.bin"
CKPT_UNET = "text2video_pytorch_model.pth"
CKPT_AUTOENCODER = "VQGAN_autoencoder.pth"

# The UNet sizes of the tiny model: the default of build(). Same keys as the real configuration.json
# (whose sizes are in benchmarks/bench_gpu.py). unet_context_dim stays 1024 because the text
# encoder's width is 1024 and the UNet decoder hard-codes it anyway.
TINY_MODEL_CFG: Mapping[str, Any] = MappingProxyType({
    "unet_in_dim": 4,
    "unet_dim": 32,  # GroupNorm(32) needs multiples of 32
    "unet_y_dim": 32,
    "unet_context_dim": 1024,
    "unet_out_dim": 4,
    "unet_dim_mult": [1, 2],  # one downsample: latents need even sides
    "unet_num_heads": 2,
    "unet_head_dim": 16,
    "unet_res_blocks": 1,
    "unet_attn_scales": [1, 0.5],
    "unet_dropout": 0.1,
    "temporal_attention": "True",
    "num_timesteps": 1000,
    "mean_type": "eps",
    "var_type": "fixed_small",
    "loss_type": "mse",
})


def _configuration(model_cfg: Mapping[str, Any] = TINY_MODEL_CFG) -> Dict[str, Any]:
    """The ``configuration.json`` of a model folder: the real one's keys, with ``model_cfg`` as its sizes."""
    return {
        "framework": "pytorch",
        "task": "text-to-video-synthesis",
        "model": {
            "type": "latent-text-to-video-synthesis",
            "model_args": {
                "ckpt_clip": CKPT_CLIP,
                "ckpt_unet": CKPT_UNET,
                "ckpt_autoencoder": CKPT_AUTOENCODER,
                "max_frames": 16,
                "tiny_gpu": 1,  # as in the real config; the backend places components itself
            },
            "model_cfg": copy.deepcopy(dict(model_cfg)),
        },
        "pipeline": {"type": "latent-text-to-video-synthesis"},
    }


TINY_VIT_H_14: Mapping[str, Any] = MappingProxyType({
    "embed_dim": 1024,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 2},
})

# The VAE architecture TextToVideoSynthesis builds (copied from its __init__: it is not configurable).
_VAE_DDCONFIG = {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
}

_ROW_STRIDE = 5  # distance between the windows of consecutive rows in a weight's random pool


def _strided_random_weights(module, generator) -> Dict[str, Any]:  # values: torch tensors
    """Random weights for every entry of ``module``'s state dict, as small strided views.

    ``module`` may live on the meta device: only names, shapes and module types are read.
    """
    import torch
    from torch import nn

    norm_types = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.InstanceNorm2d)
    norm_params = set()
    for name, sub in module.named_modules():
        if isinstance(sub, norm_types):
            norm_params.update(f"{name}.{p}" if name else p for p in ("weight", "bias"))

    state: Dict[str, torch.Tensor] = {}
    for name, meta in module.state_dict(keep_vars=False).items():
        shape = tuple(meta.shape)
        numel = math.prod(shape)
        if name in norm_params:
            # ones/zeros from a single stored element, expanded (stride 0) to the full shape
            value = 1.0 if name.endswith("weight") else 0.0
            state[name] = torch.full((1,), value).expand(shape)
        elif len(shape) >= 2:
            rows, row_len = shape[0], numel // shape[0]
            # embeddings are looked up, not multiplied: a small fixed scale, not 1/sqrt(fan_in)
            scale = 0.02 if "embedding" in name else 1.0 / math.sqrt(row_len)
            pool = torch.randn((rows - 1) * _ROW_STRIDE + row_len, generator=generator) * scale
            inner = []
            step = 1
            for size in reversed(shape[1:]):
                inner.append(step)
                step *= size
            state[name] = pool.as_strided(shape, (_ROW_STRIDE, *reversed(inner)))
        elif numel == 0:
            state[name] = torch.zeros(shape)
        else:
            # biases, class embeddings, logit scale: small random values
            state[name] = torch.randn(shape, generator=generator) * 0.02
    return state


def build(
    folder: Union[str, Path],
    *,
    model_cfg: Mapping[str, Any] = TINY_MODEL_CFG,
    clip_cfg: Optional[Mapping[str, Any]] = TINY_VIT_H_14,
) -> Dict[str, int]:
    """Write a random ``damo/text-to-video-synthesis``-layout model folder; return parameter counts.

    By default the tiny one: well under a second, a few MB. ``model_cfg`` is the UNet part of
    ``configuration.json``; ``clip_cfg`` the open_clip "ViT-H-14" config, written to the folder's
    ``open_clip_config/`` for the backend to register, or None for the one open_clip ships (the real
    checkpoint's). The VAE is always the hard-coded one. Weights are strided views of small random
    pools whatever the sizes (see the module docstring), so even the full sizes stay small on disk;
    the modules are only ever built on the meta device. Counts: "unet", "vae", "clip_text" (the
    text tower, the part the model uses). Needs the ``[modelscope]`` extra (modelscope and
    open_clip_torch==2.24.0).
    """
    import open_clip
    import torch
    from modelscope.models.multi_modal.video_synthesis.autoencoder import AutoencoderKL
    from modelscope.models.multi_modal.video_synthesis.unet_sd import UNetSD

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)  # the same folder every time

    (folder / "configuration.json").write_text(json.dumps(_configuration(model_cfg), indent=2) + "\n")
    if clip_cfg is None:
        clip_cfg = open_clip.get_model_config("ViT-H-14")
    else:
        config_dir = folder / TINY_CONFIG_DIR
        config_dir.mkdir(exist_ok=True)
        (config_dir / "ViT-H-14.json").write_text(json.dumps(dict(clip_cfg), indent=2) + "\n")

    cfg = model_cfg
    with torch.device("meta"):  # shapes only: no memory, no random init
        unet = UNetSD(
            in_dim=cfg["unet_in_dim"], dim=cfg["unet_dim"], y_dim=cfg["unet_y_dim"],
            context_dim=cfg["unet_context_dim"], out_dim=cfg["unet_out_dim"],
            dim_mult=cfg["unet_dim_mult"], num_heads=cfg["unet_num_heads"],
            head_dim=cfg["unet_head_dim"], num_res_blocks=cfg["unet_res_blocks"],
            attn_scales=cfg["unet_attn_scales"], dropout=cfg["unet_dropout"],
            temporal_attention=cfg["temporal_attention"] == "True",
        )
        vae = AutoencoderKL(_VAE_DDCONFIG, 4)
        # the class open_clip builds for ViT-H-14, straight from the config
        clip = open_clip.model.CLIP(
            embed_dim=clip_cfg["embed_dim"],
            vision_cfg=clip_cfg["vision_cfg"],
            text_cfg=clip_cfg["text_cfg"],
        )
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in (("unet", unet), ("vae", vae))}
    counts["clip_text"] = sum(p.numel() for n, p in clip.named_parameters() if not n.startswith("visual."))

    torch.save(_strided_random_weights(unet, generator), folder / CKPT_UNET)
    vae_state = _strided_random_weights(vae, generator)
    torch.save({"state_dict": {f"first_stage_model.{k}": v for k, v in vae_state.items()}},
               folder / CKPT_AUTOENCODER)
    torch.save(_strided_random_weights(clip, generator), folder / CKPT_CLIP)
    return counts


__all__ = ["build", "TINY_CONFIG_DIR", "TINY_MODEL_CFG", "TINY_VIT_H_14"]
