"""A tiny random text-to-video model in the folder layout of ``ali-vilab/text-to-video-ms-1.7b``.

Same subfolders (unet/, vae/, text_encoder/, tokenizer/, scheduler/) and the same classes as the
real checkpoint, plus a ``model_index.json``, so both our loader and diffusers'
``TextToVideoSDPipeline.from_pretrained`` load it exactly as they load the real id. Random weights,
fixed seed: the frames are coloured noise, but the same noise every time it is built.
"""

from __future__ import annotations

import copy
import gc
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import padded_vocab

SEED = 0

# Real words, so captions typed in tests tokenize into whole-word tokens the way CLIP's vocab would.
WORDS = (
    "the", "an", "cat", "dog", "runs", "on", "beach", "in", "snow", "red", "car", "man", "woman",
    "walking", "street", "sunset", "park", "playing", "with", "ball", "of", "and", "water", "flying",
    "bird", "sky", "city", "night", "people", "dancing", "astronaut", "riding", "horse", "blue",
    "green", "tree", "forest", "river", "video", "blurry", "low", "quality", "text", "watermark",
)
SPECIALS = ("<|startoftext|>", "<|endoftext|>")

# The scheduler config published with ali-vilab/text-to-video-ms-1.7b (a DDIM scheduler): the
# generator builds its DPM-Solver++ and DDIM schedulers from it, so the tiny model must carry the same.
SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}


# The tiny sizes: the defaults of build(). The published ones (ali-vilab/text-to-video-ms-1.7b) are
# in benchmarks/bench_gpu.py; the classes' own defaults fill in whatever a size dict leaves out.
TINY_UNET: Mapping[str, Any] = MappingProxyType(dict(
    sample_size=4,
    block_out_channels=(8, 16),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
    up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    cross_attention_dim=16,
    attention_head_dim=4,
    norm_num_groups=4,
))
TINY_VAE: Mapping[str, Any] = MappingProxyType(dict(
    block_out_channels=(8, 8, 8, 8),  # 4 blocks (always): scale factor 8, like the real VAE
    norm_num_groups=2,
    layers_per_block=1,
    sample_size=32,
))
TINY_TEXT: Mapping[str, Any] = MappingProxyType(dict(
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    projection_dim=16,
))


def tiny_vocab_and_merges(words: Tuple[str, ...] = WORDS) -> Tuple[Dict[str, int], List[str]]:
    """A CLIP-style BPE vocabulary: specials, single characters, and left-to-right merges to whole words.

    Every merge result is itself in the vocabulary (the BPE model refuses merges that produce unknown
    tokens), and single characters (bare and with the end-of-word mark) cover any lowercase text.
    """
    tokens: List[str] = list(SPECIALS)
    chars = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-"
    tokens += list(chars) + [c + "</w>" for c in chars]
    merges: List[str] = []
    for word in words:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        left = parts[0]
        for right in parts[1:]:
            merges.append(f"{left} {right}")
            left = left + right
            tokens.append(left)
    vocab: Dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    merges = list(dict.fromkeys(merges))
    return vocab, merges


def _like_a_trained_vae(vae: Any) -> Any:
    """Give a random VAE the two properties every trained one has, so video-to-video behaves as it would.

    1. A near-deterministic posterior: trained encoders output a tiny variance, random ones about 1,
       which would bury the input under sampling noise. The log-variance half of ``quant_conv`` is
       set to a constant -10 (a standard deviation of e^-5, under 1 % of the latents' spread).
    2. Latents of unit spread after scaling: ``scaling_factor`` is chosen as 1 / (standard deviation
       of the posterior mean on a fixed test pattern), the way 0.18215 was chosen for Stable Diffusion's
       VAE on images. With a random VAE's factor left at 0.18215 the input would be 1/30 of the noise.
    """
    import torch

    with torch.no_grad():
        half = vae.quant_conv.out_channels // 2
        vae.quant_conv.weight[half:] = 0
        vae.quant_conv.bias[half:] = -10.0
        size = int(vae.config.sample_size) if isinstance(vae.config.sample_size, int) else 32
        y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
        pattern = torch.stack([x, y, x * y])[None].to(vae.quant_conv.weight.device)  # smooth, all channels
        spread = float(vae.encode(pattern).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=round(1.0 / max(spread, 1e-6), 5))
    return vae


def build(
    folder: Union[str, Path],
    *,
    unet: Mapping[str, Any] = TINY_UNET,
    vae: Mapping[str, Any] = TINY_VAE,
    text: Mapping[str, Any] = TINY_TEXT,
    vocab_size: Optional[int] = None,
    device: str = "cpu",
    save_dtypes: Sequence[str] = ("float16", "float32"),
    unet_class: Any = None,
) -> Dict[str, int]:
    """Write random text-to-video components into ``folder``; return each one's parameter count.

    By default the tiny ones (well under a second on a CPU). ``unet`` holds ``UNet3DConditionModel``
    arguments, ``vae`` ``AutoencoderKL`` sizes (always 4 blocks and 4 latent channels, as the real
    VAE), ``text`` ``CLIPTextConfig`` sizes. ``vocab_size`` grows the tokenizer's vocabulary with
    unused tokens to the real table size (49408), so the text encoder's embedding has the real shape.
    Components are built on ``device`` (random init of 1.4 B parameters: seconds on a GPU, minutes on
    a CPU) one at a time, and each is saved once per entry of ``save_dtypes``: "float16" as the "fp16"
    variant (the files fetched on CUDA), "float32" as the plain files. ``unet_class``: another UNet
    class for ``unet`` (``tiny.animatediff`` writes a Stable Diffusion ``UNet2DConditionModel``).
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # Hand-written vocab.json + merges.txt + tokenizer_config.json: the files the real repo ships.
    vocab, merges = tiny_vocab_and_merges()
    if vocab_size is not None:
        vocab = padded_vocab(vocab, vocab_size, "<|unused{}|>")
    tokenizer_dir = folder / "tokenizer"
    tokenizer_dir.mkdir(exist_ok=True)
    (tokenizer_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "do_lower_case": True,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n", encoding="utf-8")
    # transformers can silently fall back to a 3-token vocab when it misreads the files: check.
    reloaded = CLIPTokenizer.from_pretrained(str(tokenizer_dir))
    if len(reloaded) != len(vocab) or reloaded.model_max_length != 77:
        raise RuntimeError(
            f"tiny tokenizer reloads with {len(reloaded)} tokens and max length {reloaded.model_max_length}, "
            f"expected {len(vocab)} and 77"
        )

    text_config = CLIPTextConfig(
        vocab_size=len(vocab),
        **text,
        max_position_embeddings=77,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    makers = (
        ("text_encoder", lambda: CLIPTextModel(text_config)),
        ("unet", lambda: (unet_class or UNet3DConditionModel)(**unet)),
        ("vae", lambda: _like_a_trained_vae(AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            **vae,
        ))),
    )
    counts: Dict[str, int] = {}
    for offset, (name, make) in enumerate(makers):
        torch.manual_seed(SEED + offset)
        with torch.device(device):
            model = make()
        counts[name] = sum(p.numel() for p in model.parameters())
        _save(model, folder / name, save_dtypes)
        del model
        if torch.device(device).type == "cuda":  # a full-size UNet is gigabytes: free it before the next
            gc.collect()
            torch.cuda.empty_cache()

    scheduler = DDIMScheduler.from_config({k: v for k, v in SCHEDULER_CONFIG.items() if k != "_class_name"})
    scheduler.save_pretrained(folder / "scheduler")

    model_index = {
        "_class_name": "TextToVideoSDPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n", encoding="utf-8")
    return counts


def _save(model, path: Path, dtypes: Sequence[str]) -> None:
    """Save ``model`` once per dtype, in the order given; the last save converts in place (no copy).

    Each save rewrites config.json, so the last dtype is the one it records: the tiny model saves
    "float16" first and "float32" last, so its plain files and config say fp32.
    """
    import torch

    for index, name in enumerate(dtypes):
        dtype = getattr(torch, name)
        last = index == len(dtypes) - 1
        copy_or_self = model if last else copy.deepcopy(model)
        copy_or_self.to(dtype=dtype).save_pretrained(path, variant="fp16" if dtype == torch.float16 else None)


__all__ = ["build", "tiny_vocab_and_merges", "WORDS", "SCHEDULER_CONFIG", "TINY_UNET", "TINY_VAE", "TINY_TEXT"]
