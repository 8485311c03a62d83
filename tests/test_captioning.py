"""BlipCaptioner through the real loading path, with the tiny random BLIP; consensus as a pure function."""

from __future__ import annotations

import json

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from vid2vid_widgets import video
from vid2vid_widgets.tiny.blip import tiny_blip_vocab
from vid2vid_widgets.captioning import BlipCaptioner, Caption, clean_caption, consensus_caption
from vid2vid_widgets.errors import GenerationCancelled, GPUOutOfMemoryError, InvalidSettingsError, ModelLoadError
from vid2vid_widgets.models import REGISTRY
from vid2vid_widgets.progress import CancelToken
from vid2vid_widgets.tiny import tiny_model_path

K = 3


@pytest.fixture(scope="module")
def tiny_blip() -> str:
    return tiny_model_path("captioner")


@pytest.fixture(scope="module")
def bikes_frames(bikes):
    return video.sample_frames(bikes, K, max_side=128)


@pytest.fixture()
def captioner(tiny_blip) -> BlipCaptioner:
    return BlipCaptioner(tiny_blip, device="cpu")


class GenerateSpy:
    """Wraps ``model.generate`` and records each call's batch size and keyword arguments."""

    def __init__(self, model):
        self.real = model.generate
        self.calls = []

    def __call__(self, *args, **kwargs):
        self.calls.append({"batch": int(kwargs["pixel_values"].shape[0]), **{k: v for k, v in kwargs.items() if k != "pixel_values"}})
        return self.real(*args, **kwargs)


# -- the tiny model itself ---------------------------------------------------------------------


def test_tiny_blip_reloads_with_its_whole_vocabulary(captioner):
    model, processor = captioner.load()
    tokenizer = processor.tokenizer
    # transformers-5 trap: a tokenizer built from vocab_file silently reloads with 5 tokens.
    assert len(tokenizer) == len(tiny_blip_vocab()) + 1  # + [DEC]
    assert tokenizer.bos_token == "[DEC]" and model.config.text_config.bos_token_id == tokenizer.bos_token_id
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert not model.training and next(model.parameters()).dtype == torch.float32


# -- captions of real frames -------------------------------------------------------------------


def test_real_frames_get_one_caption_each_and_a_consensus(captioner, bikes_frames):
    reports = []
    caption = captioner.caption_frames(bikes_frames.frames, bikes_frames.timestamps, on_progress=reports.append)

    assert len(caption.per_frame) == K and all(text.strip() for text in caption.per_frame)
    words = set(tiny_blip_vocab())
    assert all(set(text.split()) <= words for text in caption.per_frame)  # real words, no [UNK]/[SEP]
    assert caption.text in [text[:1].upper() + text[1:] for text in caption.per_frame]
    assert caption.text[0].isupper() and "  " not in caption.text
    assert caption.timestamps == bikes_frames.timestamps
    assert [(r.stage, r.step, r.total) for r in reports] == [("caption", 0, 1), ("caption", 1, 1)]
    assert Caption(**json.loads(json.dumps(caption.to_dict()))) == caption


def test_all_frames_go_through_generate_in_one_batch(captioner, bikes_frames, monkeypatch):
    spy = GenerateSpy(captioner.model)
    monkeypatch.setattr(captioner.model, "generate", spy)
    captioner.caption_frames(bikes_frames.frames, bikes_frames.timestamps)
    assert [call["batch"] for call in spy.calls] == [K]


def test_same_frames_give_the_same_caption(captioner, bikes_frames):
    first = captioner.caption_frames(bikes_frames.frames, bikes_frames.timestamps)
    again = BlipCaptioner(captioner.model_id, device="cpu").caption_frames(bikes_frames.frames, bikes_frames.timestamps)
    assert again == first


def test_decoding_settings_reach_generate_and_limit_the_caption(tiny_blip, bikes_frames, monkeypatch):
    short = BlipCaptioner(tiny_blip, device="cpu", num_beams=2, max_new_tokens=5, repetition_penalty=1.3,
                          no_repeat_ngram_size=2)
    spy = GenerateSpy(short.model)
    monkeypatch.setattr(short.model, "generate", spy)
    caption = short.caption_frames(bikes_frames.frames[:2])

    (call,) = spy.calls
    assert (call["num_beams"], call["max_new_tokens"], call["repetition_penalty"], call["no_repeat_ngram_size"]) == (2, 5, 1.3, 2)
    assert call.get("do_sample") is False
    # One word per token in the tiny vocabulary: the token limit is a word limit the person sees.
    assert all(1 <= len(text.split()) <= 5 for text in caption.per_frame)
    assert caption.timestamps == []
    assert short.describe()["num_beams"] == 2 and short.describe()["max_new_tokens"] == 5


# -- residency -----------------------------------------------------------------------------------


def test_two_captioners_share_one_resident_model(tiny_blip, bikes_frames):
    first = BlipCaptioner(tiny_blip, device="cpu")
    REGISTRY.unload("captioner")
    loads_before = REGISTRY.load_counts[first.key]

    second = BlipCaptioner(tiny_blip, device="cpu", num_beams=1)  # decoding settings are not part of the key
    first.caption_frames(bikes_frames.frames[:1])
    second.caption_frames(bikes_frames.frames[:1])

    assert first.model is second.model
    assert REGISTRY.load_counts[first.key] == loads_before + 1
    description = first.describe()
    assert description["model_id"] == tiny_blip and description["revision"] is None  # a local folder has no commit
    assert (description["device"], description["dtype"]) == ("cpu", "float32")


# -- cancel, bad input, load failures, out of memory ---------------------------------------------


def test_cancel_before_the_forward_stops_without_generating(captioner, bikes_frames, monkeypatch):
    spy = GenerateSpy(captioner.model)
    monkeypatch.setattr(captioner.model, "generate", spy)
    token = CancelToken()
    token.cancel()
    with pytest.raises(GenerationCancelled):
        captioner.caption_frames(bikes_frames.frames, cancel=token)
    assert spy.calls == []


def test_bad_frame_lists_are_refused_with_a_reason(captioner):
    with pytest.raises(InvalidSettingsError, match="at least one frame"):
        captioner.caption_frames([])
    with pytest.raises(InvalidSettingsError, match="shape"):
        captioner.caption_frames([np.zeros((8, 8), np.uint8)])
    with pytest.raises(InvalidSettingsError, match="timestamp"):
        captioner.caption_frames([np.zeros((8, 8, 3), np.uint8)], [0.0, 1.0])


def test_missing_folder_is_a_model_load_error_naming_it(tmp_path):
    missing = str(tmp_path / "no-such-blip")
    captioner = BlipCaptioner(missing, device="cpu")
    with pytest.raises(ModelLoadError, match="no-such-blip") as info:
        captioner.load()
    assert "does not exist" in str(info.value)
    assert not REGISTRY.is_loaded(captioner.key)


def test_unknown_id_offline_is_a_model_load_error_saying_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once at import
    captioner = BlipCaptioner("nobody-here/blip-that-does-not-exist", device="cpu")
    with pytest.raises(ModelLoadError) as info:
        captioner.load()
    message = str(info.value)
    assert "nobody-here/blip-that-does-not-exist" in message
    assert "HF_HOME" in message and "HF_HUB_OFFLINE=1" in message and "local folder" in message


def test_out_of_memory_becomes_advice_and_the_model_stays_loaded(captioner, bikes_frames, monkeypatch):
    model = captioner.model

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "generate", out_of_memory)
    with pytest.raises(GPUOutOfMemoryError, match="caption frames"):
        captioner.caption_frames(bikes_frames.frames)
    assert REGISTRY.is_loaded(captioner.key) and captioner.model is model

    monkeypatch.undo()
    assert len(captioner.caption_frames(bikes_frames.frames[:1]).per_frame) == 1


# -- consensus: a pure function -----------------------------------------------------------------


def test_consensus_picks_the_caption_most_frames_agree_with():
    captions = [
        "a title card with white text",
        "a man riding a bike down a street",
        "a man riding a bicycle down the street",
        "a man riding a bike on a street",
    ]
    assert consensus_caption(captions) == "A man riding a bike down a street"


def test_consensus_ties_go_to_the_earliest_frame_and_text_is_cleaned():
    assert consensus_caption(["a red car", "a blue boat"]) == "A red car"
    assert consensus_caption(["  a   dog\n on the  beach "]) == "A dog on the beach"
    assert consensus_caption(["", "   ", "a dog on a beach"]) == "A dog on a beach"
    assert consensus_caption(["", ""]) == "" and consensus_caption([]) == ""


def test_consensus_is_always_one_of_the_frame_captions():
    captions = ["two cats on a couch", "a cat sleeping on a couch", "a cat on a sofa", "a dog in a park"]
    assert consensus_caption(captions) in [c[:1].upper() + c[1:] for c in captions]
    assert consensus_caption(captions) != "A dog in a park"


@pytest.mark.parametrize("raw,clean", [
    ("arafed man riding a bike", "Man riding a bike"),
    ("there is a  araffe woman in a field", "There is a woman in a field"),
    ("a giraffe standing in the grass", "A giraffe standing in the grass"),  # real words stay
    ("  two   dogs\nplaying ", "Two dogs playing"),
])
def test_clean_caption_drops_blip_fillers_and_tidies_spaces(raw, clean):
    assert clean_caption(raw) == clean


def test_caption_similarity_is_the_matrix_the_consensus_uses():
    from vid2vid_widgets.captioning import caption_similarity

    captions = ["a dog runs on the beach", "a dog on the beach", "a title card"]
    matrix = caption_similarity(captions)
    assert [matrix[i][i] for i in range(3)] == [1.0, 1.0, 1.0]
    assert matrix[0][1] == matrix[1][0] == 5 / 6  # 5 shared words of the 6 in either
    assert matrix[0][2] < matrix[0][1]
    row_means = [(sum(row) - 1) / 2 for row in matrix]
    assert consensus_caption(captions) == clean_caption(captions[row_means.index(max(row_means))])
