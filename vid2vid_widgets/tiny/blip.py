"""A tiny random BLIP captioner, saved in the same layout as ``Salesforce/blip-image-captioning-base``.

Used by tests, CI and ``models="tiny"``: a folder written by ``build(folder)`` goes through the
very same ``from_pretrained`` path as the real model id, so loading, batching, decoding settings and
error handling are exercised without downloading anything. Its captions are random strings of real
English words (the vocabulary below): readable enough to see in a UI, meaningless by design.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Union

from . import CAPTION_WORDS as _WORDS, padded_vocab

# Special tokens first, in BERT's order, so pad=0 like the real BLIP tokenizer.
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


TINY_IMAGE_SIZE = 32

# The tiny sizes: the defaults of build(). Pass {} for any of them to get BlipConfig's own defaults,
# which are the sizes of Salesforce/blip-image-captioning-base (224 M parameters, 384 px images).
TINY_VISION: Mapping[str, Any] = MappingProxyType({
    "hidden_size": 32,
    "intermediate_size": 64,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": TINY_IMAGE_SIZE,
    "patch_size": 8,
    # BLIP's default vision init (1e-10) makes a random encoder blind: every frame would get
    # the same caption. A wide init lets different frames give different captions, so the
    # consensus step has something to choose between, as with the real model.
    "initializer_range": 1.0,
})
TINY_TEXT: Mapping[str, Any] = MappingProxyType({
    "hidden_size": 32,
    "encoder_hidden_size": 32,
    "intermediate_size": 64,
    "projection_dim": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 64,
})
TINY_PROJECTION: Mapping[str, Any] = MappingProxyType({"projection_dim": 32, "image_text_hidden_size": 32})


def tiny_blip_vocab() -> Dict[str, int]:
    """The word-level vocabulary of the tiny tokenizer (special tokens first, then unique words)."""
    tokens = list(dict.fromkeys(_SPECIAL + _WORDS))  # dict.fromkeys: drop repeats, keep order
    return {token: index for index, token in enumerate(tokens)}


def build(
    folder: Union[str, Path],
    seed: int = 0,
    *,
    vision: Mapping[str, Any] = TINY_VISION,
    text: Mapping[str, Any] = TINY_TEXT,
    projection: Mapping[str, Any] = TINY_PROJECTION,
    vocab_size: Optional[int] = None,
    device: str = "cpu",
) -> int:
    """Write a random ``BlipForConditionalGeneration`` and its ``BlipProcessor`` into ``folder``.

    By default the tiny one: hidden size 32, 2 layers, 32 px images in 8 px patches; it builds,
    saves and captions in well under a second on a CPU. ``vision``, ``text`` and ``projection`` are
    ``BlipVisionConfig``, ``BlipTextConfig`` and ``BlipConfig`` sizes; the processor's image size
    follows the vision config. ``vocab_size`` grows the tokenizer's vocabulary with unused tokens to
    the real table size (30524 for the base model), so every generated id decodes. The model is
    built on ``device`` (seconds on a GPU for the base size). The weights come from a fixed torch
    seed (inside a forked RNG, so the caller's random state is untouched): the same folder content,
    and so the same captions, every time. Returns the number of parameters; the folder is then
    ready for ``from_pretrained``.
    """
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    from .._compat import bert_tokenizer_fast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    vocab = tiny_blip_vocab()
    if vocab_size is not None:
        vocab = padded_vocab(vocab, vocab_size - 1, "[unused{}]")  # [DEC] comes last
    # transformers 4 reads only vocab_file=, 5 only vocab= (a dict): _compat answers both.
    tokenizer = bert_tokenizer_fast(vocab, do_lower_case=True, model_max_length=512)
    # BLIP's decoder starts every caption with [DEC] (its bos), exactly like the real checkpoint.
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})

    text_config = {
        "vocab_size": len(tokenizer),
        **text,
        # Token ids come from the tokenizer, never from BLIP's defaults (30522 etc. do not exist here).
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    config = BlipConfig(vision_config=dict(vision), text_config=text_config, **projection)

    image_size = config.vision_config.image_size
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)

    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(config).eval()
    params = sum(p.numel() for p in model.parameters())

    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return params


__all__ = ["build", "tiny_blip_vocab", "TINY_IMAGE_SIZE", "TINY_VISION", "TINY_TEXT", "TINY_PROJECTION"]
