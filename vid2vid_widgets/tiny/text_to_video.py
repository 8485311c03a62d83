"""A tiny random text-to-video model in the folder layout of ``ali-vilab/text-to-video-ms-1.7b``.

Same subfolders (unet/, vae/, text_encoder/, tokenizer/, scheduler/) and the same classes as the
real checkpoint, plus a ``model_index.json``, so both our loader and diffusers'
``TextToVideoSDPipeline.from_pretrained`` load it exactly as they load the real id. Random weights,
fixed seed: the frames are coloured noise, but the same noise every time it is built.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Dict, List, Tuple, Union

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


def build(folder: Union[str, Path]) -> str:
    """Write tiny random text-to-video components into ``folder`` and return its path as a string."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # Hand-written vocab.json + merges.txt + tokenizer_config.json: the files the real repo ships.
    vocab, merges = tiny_vocab_and_merges()
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

    torch.manual_seed(SEED)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=16,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    torch.manual_seed(SEED + 1)
    unet = UNet3DConditionModel(
        sample_size=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    torch.manual_seed(SEED + 2)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),  # 4 blocks: scale factor 8, like the real VAE
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=2,
        layers_per_block=1,
        sample_size=32,
    )
    scheduler = DDIMScheduler.from_config({k: v for k, v in SCHEDULER_CONFIG.items() if k != "_class_name"})

    # The real repo also carries fp16 files: writing them lets GPU runs exercise the variant path.
    # fp16 first, fp32 last: each save rewrites config.json, and its recorded dtype must be fp32.
    for name, model in (("text_encoder", text_encoder), ("unet", unet), ("vae", vae)):
        copy.deepcopy(model).half().save_pretrained(folder / name, variant="fp16")
        model.save_pretrained(folder / name)
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
    return str(folder)


__all__ = ["build", "tiny_vocab_and_merges", "WORDS", "SCHEDULER_CONFIG"]
