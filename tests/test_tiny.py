"""The tiny random models (``models="tiny"``): where they are built, how they are named, the old alias."""

from __future__ import annotations

import pytest

from vid2vid_widgets import tiny


def test_unknown_role_names_the_roles_there_are(tmp_path):
    with pytest.raises(ValueError) as raised:
        tiny.tiny_model_path("captioning", root=tmp_path)
    message = str(raised.value)
    assert "'captioning'" in message
    for role in ("captioner", "text-to-video", "modelscope"):
        assert role in message
    assert not any(tmp_path.iterdir())  # nothing half-built left behind


def test_old_testing_module_is_the_same_functions():
    from vid2vid_widgets.testing import tiny_model_path, tiny_models_root

    assert tiny_model_path is tiny.tiny_model_path
    assert tiny_models_root is tiny.tiny_models_root


def test_a_model_is_built_once_then_reused(tmp_path):
    folder = tiny.tiny_model_path("captioner", root=tmp_path)
    stamp = (tmp_path / "captioner" / "model.safetensors").stat().st_mtime_ns

    assert tiny.tiny_model_path("captioner", root=tmp_path) == folder
    assert (tmp_path / "captioner" / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["captioner"]  # no temporary build folder left


def test_blip_vocabulary_padded_to_the_model_table_size(tmp_path):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from vid2vid_widgets.tiny import blip

    params = blip.build(tmp_path, vocab_size=200)

    processor = BlipProcessor.from_pretrained(tmp_path)
    model = BlipForConditionalGeneration.from_pretrained(tmp_path)
    assert len(processor.tokenizer) == 200 == model.config.text_config.vocab_size
    assert processor.tokenizer.convert_ids_to_tokens(199) == "[DEC]"  # the decoder's start token stays last
    assert params == sum(p.numel() for p in model.parameters())
