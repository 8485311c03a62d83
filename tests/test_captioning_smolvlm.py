"""SmolVLMCaptioner through the real loading path and the real SmolVLMProcessor, with the tiny random SmolVLM2."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "SmolVLMForConditionalGeneration"):
    pytest.skip("this transformers has no SmolVLM2", allow_module_level=True)

from vid2vid_widgets import video  # noqa: E402
from vid2vid_widgets.captioning_smolvlm import (  # noqa: E402
    FP16_NOTE,
    SmolVLMCaptioner,
    logits_are_finite,
    one_sentence,
)
from vid2vid_widgets.errors import GenerationCancelled, GPUOutOfMemoryError, ModelLoadError  # noqa: E402
from vid2vid_widgets.models import REGISTRY  # noqa: E402
from vid2vid_widgets.progress import CancelToken  # noqa: E402
from vid2vid_widgets.tiny import tiny_model_path  # noqa: E402
from vid2vid_widgets.tiny.smolvlm import tiny_smolvlm_vocab  # noqa: E402

K = 4


@pytest.fixture(scope="module")
def tiny_smolvlm() -> str:
    return tiny_model_path("smolvlm")


@pytest.fixture(scope="module")
def bikes_frames(bikes):
    return video.sample_frames(bikes, K, max_side=128)


@pytest.fixture()
def captioner(tiny_smolvlm) -> SmolVLMCaptioner:
    return SmolVLMCaptioner(tiny_smolvlm, device="cpu", max_new_tokens=12)


def test_tiny_model_reloads_with_its_processor_tokenizer_and_chat_template(captioner, bikes_frames):
    loaded = captioner.load()
    processor = loaded.processor
    assert type(processor).__name__ == "SmolVLMProcessor" and type(loaded.model).__name__ == "SmolVLMForConditionalGeneration"
    assert len(processor.tokenizer) == len(tiny_smolvlm_vocab())
    assert processor.chat_template and "video" in processor.chat_template
    # The frames went in as ONE video: one block of image tokens per frame, at the frames' real times.
    inputs = captioner.preprocess(bikes_frames.frames, bikes_frames.timestamps)
    assert tuple(inputs["pixel_values"].shape[:2]) == (1, K)
    image_token = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_token).sum()) == K * processor.image_seq_len
    words = " ".join(processor.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0]))
    assert "User :" in words and words.endswith("Assistant :")  # the chat template ran
    assert words.count("Frame from") == K
    for seconds in bikes_frames.timestamps:  # the frames' real times reached the prompt
        assert f"Frame from 00 : {int(seconds):02d}" in words


def test_real_frames_give_one_deterministic_sentence_with_progress(captioner, bikes_frames):
    reports = []
    caption = captioner.caption_frames(bikes_frames.frames, bikes_frames.timestamps, on_progress=reports.append)
    assert caption.text.strip() and caption.text == one_sentence(caption.text)  # already clean
    assert caption.per_frame == [] and caption.timestamps == list(bikes_frames.timestamps)
    assert [(r.stage, r.step, r.total) for r in reports] == [("caption", 0, 1), ("caption", 1, 1)]
    assert captioner.caption_frames(bikes_frames.frames, bikes_frames.timestamps).text == caption.text
    described = captioner.describe()
    assert described["label"] == "SmolVLM2" and described["dtype"] == "float32" and described["notes"] == []


def test_cancel_before_and_between_tokens(captioner, bikes_frames):
    token = CancelToken()
    token.cancel()
    with pytest.raises(GenerationCancelled):
        captioner.caption_frames(bikes_frames.frames, cancel=token)

    model = captioner.load().model
    token, steps = CancelToken(), []

    def count(module, args):  # the person presses Cancel while the third token is computed
        steps.append(1)
        if len(steps) == 3:
            token.cancel()

    handle = model.register_forward_pre_hook(count)
    try:
        with pytest.raises(GenerationCancelled):
            captioner.caption_frames(bikes_frames.frames, cancel=token)
    finally:
        handle.remove()
    assert len(steps) == 3 < captioner.max_new_tokens


def test_out_of_memory_becomes_advice_and_the_model_stays_loaded(captioner, bikes_frames, monkeypatch):
    model = captioner.load().model

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "generate", out_of_memory)
    with pytest.raises(GPUOutOfMemoryError) as info:
        captioner.caption_frames(bikes_frames.frames)
    assert "caption frames" in str(info.value) and "now 4" in str(info.value) and "256M" in str(info.value)
    assert captioner.loaded


def test_fp16_stays_fp16_when_its_logits_are_finite(tiny_smolvlm, bikes_frames):
    captioner = SmolVLMCaptioner(tiny_smolvlm, device="cpu", dtype="float16", max_new_tokens=4)
    loaded = captioner.load()
    assert loaded.dtype == "float16" and next(loaded.model.parameters()).dtype == torch.float16
    assert logits_are_finite(loaded.model, loaded.processor)
    assert captioner.caption_frames(bikes_frames.frames).text
    REGISTRY.unload("captioner")


def test_non_finite_fp16_logits_fall_back_to_fp32_with_a_note(tiny_smolvlm, tmp_path, bikes_frames):
    from transformers import SmolVLMForConditionalGeneration

    # A checkpoint with a weight that fp16 cannot hold (above 65504): fine in fp32, inf in fp16.
    poisoned = tmp_path / "poisoned"
    shutil.copytree(tiny_smolvlm, poisoned)
    model = SmolVLMForConditionalGeneration.from_pretrained(poisoned)
    with torch.no_grad():
        model.model.vision_model.embeddings.patch_embedding.weight[0, 0, 0, 0] = 1e6
    model.save_pretrained(poisoned)
    assert not logits_are_finite(model.half(), SmolVLMCaptioner(str(poisoned), device="cpu").load().processor)

    captioner = SmolVLMCaptioner(str(poisoned), device="cpu", dtype="float16", max_new_tokens=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = captioner.load()
    assert any(FP16_NOTE in str(w.message) for w in caught)
    assert loaded.dtype == "float32" and next(loaded.model.parameters()).dtype == torch.float32
    assert captioner.caption_frames(bikes_frames.frames).text
    assert captioner.describe()["notes"] == [FP16_NOTE] and captioner.describe()["dtype"] == "float32"
    REGISTRY.unload("captioner")


def test_missing_folder_is_a_model_load_error_naming_it(tmp_path):
    with pytest.raises(ModelLoadError, match="no-such-smolvlm") as info:
        SmolVLMCaptioner(str(tmp_path / "no-such-smolvlm"), device="cpu").load()
    assert "SmolVLM2" in str(info.value) and "HuggingFaceTB/SmolVLM2-500M-Video-Instruct" in str(info.value)


@pytest.mark.parametrize("answer, sentence", [
    ("Assistant: a man rides a bike down a street. Then he stops.", "A man rides a bike down a street."),
    ("User: Describe it.<end_of_utterance>\nAssistant: The dog runs on the beach!", "The dog runs on the beach!"),
    ('  "A cat sleeps on a red sofa."  ', "A cat sleeps on a red sofa."),
    ("a boat on a lake at sunset", "A boat on a lake at sunset"),
])
def test_one_sentence_without_chat_artefacts(answer, sentence):
    assert one_sentence(answer) == sentence


def test_pipeline_caption_then_generate_records_the_captioner(tiny_smolvlm, bikes, tmp_path):
    from vid2vid_widgets._panel_text import captioner_text
    from vid2vid_widgets.pipeline import Vid2VidPipeline

    captioner = SmolVLMCaptioner(tiny_smolvlm, device="cpu", max_new_tokens=8)
    pipe = Vid2VidPipeline(captioner=captioner, models="tiny", output_dir=tmp_path, caption_frames=3,
                           num_frames=4, num_steps=2, height=32, width=32)
    captioned = pipe.caption(bikes)
    assert captioned.caption.text and len(captioned.caption.timestamps) == 3
    result = pipe.generate(captioned.caption, seed=1)
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["models"]["captioner"]["label"] == "SmolVLM2"
    assert record["models"]["captioner"]["model_id"] == tiny_smolvlm
    assert record["caption"]["text"] == captioned.caption.text == record["settings"]["prompt"]
    assert captioner_text(captioner).startswith("SmolVLM2 (") and captioner_text(captioner).endswith("smolvlm)")


def test_panel_says_which_captioner_wrote_the_caption(tiny_smolvlm, bikes, tmp_path):
    from conftest import finish  # shared test helpers live in conftest.py
    from vid2vid_widgets.panel import Vid2VidPanel
    from vid2vid_widgets.pipeline import Vid2VidPipeline

    pipe = Vid2VidPipeline(captioner=SmolVLMCaptioner(tiny_smolvlm, device="cpu", max_new_tokens=8), models="tiny",
                           output_dir=tmp_path, caption_frames=2)
    panel = Vid2VidPanel(pipe)
    panel.load(str(bikes))
    finish(panel)
    assert panel.error.value == "" and panel.caption_text.value.strip()
    assert "by SmolVLM2 (" in panel.status.value
    # One sentence for the whole clip: the dropdown offers it, and no per-frame captions.
    assert [value for _, value in panel.frame_captions.options] == [-1]
