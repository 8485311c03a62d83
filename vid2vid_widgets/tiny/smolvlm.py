"""A tiny random SmolVLM2 video captioner, saved like ``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``.

A ``SmolVLMForConditionalGeneration`` built from a config (the smallest sizes of transformers' own
``tests/models/smolvlm/test_modeling_smolvlm.py``), with a real ``SmolVLMProcessor`` (image and video
processors, a chat template, and a tokenizer made here from a word list: no hub), written with
``save_pretrained`` so that ``AutoProcessor``/``from_pretrained`` read it through the very same code
path as the real id. Given the published sizes (``VISION_500M``, ``TEXT_500M``...) the same builder
writes a full-size random model for the benchmarks.

Its captions are random words from ``CAPTION_WORDS``: the special tokens (image and chat markers) are
suppressed in its generation config, and the end token cannot come first, so a caption is never empty.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Union

from . import CAPTION_WORDS, padded_vocab

TINY_IMAGE_SIZE = 16  # frames are resized to squares of this side
TINY_VISION: Mapping[str, Any] = MappingProxyType({
    "hidden_size": 32, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "image_size": TINY_IMAGE_SIZE, "patch_size": 4,
})
TINY_TEXT: Mapping[str, Any] = MappingProxyType({
    "hidden_size": 64, "intermediate_size": 56, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_key_value_heads": 2, "max_position_embeddings": 2048, "rms_norm_eps": 1e-6,
})
TINY_SCALE_FACTOR = 2

# The published sizes of HuggingFaceTB/SmolVLM2-500M-Video-Instruct (config.json): a SigLIP-base
# vision tower at 512 px, SmolLM2-360M as the language model, pixel shuffle by 4 (64 tokens a frame).
VISION_500M: Mapping[str, Any] = MappingProxyType({
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "image_size": 512, "patch_size": 16,
})
TEXT_500M: Mapping[str, Any] = MappingProxyType({
    "hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32, "num_attention_heads": 15,
    "num_key_value_heads": 5, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
})
# ... and of the 256M variant: the same vision tower, SmolLM2-135M.
TEXT_256M: Mapping[str, Any] = MappingProxyType({
    "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
    "num_key_value_heads": 3, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
})
SCALE_FACTOR_FULL = 4
VOCAB_FULL = 49280

# Special tokens first (SmolVLM's names: the processor looks them up by these strings).
_SPECIAL = ["<|endoftext|>", "<unk>", "<|im_start|>", "<end_of_utterance>", "<image>",
            "<fake_token_around_image>", "<global-img>", "<video>"]
# Words of the prompt the processor and chat template write (and the two-digit numbers of its frame
# times, "Frame from 00:03"), so it tokenizes as words, not <unk>.
_PROMPT_WORDS = """User Assistant Describe this video one sentence for text model subject action setting You
provided following series frames Frame H MM SS : , . - [ ] ( ) ! ?""".split() + [f"{n:02d}" for n in range(60)]


def tiny_smolvlm_vocab() -> Dict[str, int]:
    tokens = list(dict.fromkeys(_SPECIAL + CAPTION_WORDS + _PROMPT_WORDS))
    return {token: index for index, token in enumerate(tokens)}


def _tokenizer(vocab: Dict[str, int]) -> Any:
    """A word-level fast tokenizer made from ``vocab`` in memory (the real one is SmolLM2's BPE)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()  # also splits off ":" "," "." as their own tokens
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies " ."
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>",
                                        eos_token="<end_of_utterance>", unk_token="<unk>", pad_token="<|endoftext|>",
                                        additional_special_tokens=_SPECIAL[4:], model_max_length=8192)
    if len(tokenizer) != len(vocab):
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, expected {len(vocab)}")
    return tokenizer


def build(
    folder: Union[str, Path],
    seed: int = 0,
    *,
    vision: Mapping[str, Any] = TINY_VISION,
    text: Mapping[str, Any] = TINY_TEXT,
    scale_factor: int = TINY_SCALE_FACTOR,
    vocab_size: Optional[int] = None,
    device: str = "cpu",
) -> int:
    """Write a random ``SmolVLMForConditionalGeneration`` and its ``SmolVLMProcessor`` into ``folder``.

    ``vision`` and ``text`` are the vision tower's and language model's config sizes; frames are
    resized to ``vision["image_size"]`` squares and each becomes (image_size / patch_size)^2 /
    scale_factor^2 image tokens, as in the real processor. ``vocab_size`` pads the vocabulary with
    unused tokens to the real table size (49280). The weights come from a fixed seed in a forked RNG.
    Returns the number of parameters.
    """
    import torch
    from transformers import (SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor,
                              SmolVLMProcessor, SmolVLMVideoProcessor)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_smolvlm_vocab()
    if vocab_size is not None:
        vocab = padded_vocab(vocab, vocab_size, "<unused_{}>")
    tokenizer = _tokenizer(vocab)

    image_size, patch_size = int(vision["image_size"]), int(vision["patch_size"])
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in _SPECIAL}
    config = SmolVLMConfig(
        vision_config=dict(vision),
        text_config={"vocab_size": len(tokenizer), **text, "pad_token_id": ids["<|endoftext|>"],
                     "bos_token_id": ids["<|im_start|>"], "eos_token_id": ids["<end_of_utterance>"]},
        image_token_id=ids["<image>"], scale_factor=scale_factor, vocab_size=len(tokenizer),
    )
    sizes = {"longest_edge": image_size}
    image_processor = SmolVLMImageProcessor(size=sizes, max_image_size=sizes, do_image_splitting=False)
    video_processor = SmolVLMVideoProcessor(
        size=sizes, max_image_size=sizes, video_sampling={"fps": 1, "max_frames": 64, "video_size": sizes})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=video_processor, image_seq_len=image_seq_len,
                                 chat_template=_chat_template())

    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = SmolVLMForConditionalGeneration(config).eval()
    # Words only: chat and image markers never appear in a caption, and it never ends before its first word.
    generation = model.generation_config
    generation.suppress_tokens = [ids[name] for name in _SPECIAL if name != "<end_of_utterance>"]
    generation.begin_suppress_tokens = [ids["<end_of_utterance>"]]
    generation.eos_token_id = ids["<end_of_utterance>"]
    generation.pad_token_id = ids["<|endoftext|>"]
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return params


def _chat_template() -> str:
    """SmolVLM2's chat template (the one transformers' processor uses for videos)."""
    from transformers.models.smolvlm import processing_smolvlm

    return processing_smolvlm.DEFAULT_CHAT_TEMPLATE


__all__ = ["build", "tiny_smolvlm_vocab", "TINY_VISION", "TINY_TEXT", "VISION_500M", "TEXT_500M", "TEXT_256M",
           "SCALE_FACTOR_FULL", "VOCAB_FULL"]
