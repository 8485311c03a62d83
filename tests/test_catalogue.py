"""The model catalogue: presets, name resolution, preset defaults reaching the settings, and every
generator preset running end to end on its tiny twin through the pipeline, the CLI and the panel."""

from __future__ import annotations

import json

import pytest

from vid2vid_widgets import catalogue, cli, models
from vid2vid_widgets.captioning import BlipCaptioner
from vid2vid_widgets.errors import InvalidSettingsError
from vid2vid_widgets.generation import BACKENDS
from vid2vid_widgets.generation.base import SCHEDULERS, GenerationSettings
from vid2vid_widgets.models import REGISTRY
from vid2vid_widgets.pipeline import Vid2VidPipeline

from conftest import finish

# Each preset's own steps, guidance and scheduler; a small video so that every preset runs in seconds.
SMALL_VIDEO = dict(num_frames=4, height=32, width=32)


def test_catalogue_has_five_generators_and_three_captioners_each_complete():
    assert len(catalogue.GENERATORS) >= 5 and len(catalogue.CAPTIONERS) >= 3
    for preset in catalogue.GENERATORS:
        assert preset.backend in BACKENDS
        # The tiny twin is the backend's own tiny model, so the same loading code runs in tests.
        assert preset.tiny_role == BACKENDS[preset.backend][2]
        assert preset.license and preset.license_url.startswith("https://") and preset.download_bytes > 1e8
        settings = preset.settings()  # every default is a real GenerationSettings field with a legal value
        assert settings.scheduler in SCHEDULERS
        assert settings.replace(prompt="x").checked()[0].num_frames == settings.num_frames
    for preset in catalogue.CAPTIONERS:
        module, _, cls = preset.factory.partition(":")
        assert module.startswith("vid2vid_widgets.") and cls
    assert catalogue.generator_preset("zeroscope-576w").commercial_use is False  # CC-BY-NC: said in the table


def test_vid2vid_models_prints_every_preset_with_license_and_size(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for preset in (*catalogue.GENERATORS, *catalogue.CAPTIONERS):
        row = next(line for line in out.splitlines() if line.startswith(preset.name + " ")
                   or line.startswith(preset.name + "  "))
        assert preset.license_text() in row and catalogue.size_text(preset.download_bytes) in row
    assert "modelscope-1.7b (default)" in out and "blip-base (default)" in out
    assert "CC-BY-NC-4.0 (non-commercial)" in out


def test_names_aliases_ids_and_folders_resolve_in_one_place(tmp_path):
    assert catalogue.resolve_generator("zeroscope")[2].name == "zeroscope-576w"
    assert catalogue.resolve_generator(None)[2].name == "modelscope-1.7b"
    assert catalogue.resolve_generator(None, "animatediff")[2].name == "animatediff"
    # The hub id of a preset gets that preset (and so its defaults); another id runs without one.
    assert catalogue.resolve_generator("cerspense/zeroscope_v2_576w")[2].name == "zeroscope-576w"
    assert catalogue.resolve_generator("someone/their-t2v") == ("diffusers", "someone/their-t2v", None)
    assert catalogue.resolve_generator(str(tmp_path), "animatediff") == ("animatediff", str(tmp_path), None)
    with pytest.raises(InvalidSettingsError, match="zeroscope-576w.*vid2vid models"):
        catalogue.resolve_generator("zeroscop")
    with pytest.raises(InvalidSettingsError, match="runs on the 'animatediff' backend"):
        catalogue.resolve_generator("animatediff-lightning", "diffusers")


def test_preset_defaults_reach_the_settings_unless_given(tmp_path):
    pipeline = Vid2VidPipeline(generator="zeroscope", models="tiny", device="cpu", output_dir=tmp_path,
                               num_frames=4, seed=3)
    assert pipeline.preset.name == "zeroscope-576w"
    assert (pipeline.settings.width, pipeline.settings.height) == (576, 320)  # the preset's
    assert pipeline.settings.num_frames == 4 and pipeline.settings.seed == 3  # given: they win
    pipeline.set_model("animatediff-lightning")
    assert (pipeline.settings.num_steps, pipeline.settings.guidance_scale, pipeline.settings.scheduler) == (4, 1.0,
                                                                                                        "euler")
    assert pipeline.settings.num_frames == 4  # still the given one
    assert pipeline.backend == "animatediff"
    # A model that is not a preset: plain GenerationSettings defaults.
    folder = pipeline.generator.model_id
    other = Vid2VidPipeline(model=folder, generator="animatediff", models="tiny", device="cpu", output_dir=tmp_path)
    assert other.preset is None and other.settings == GenerationSettings()
    with pytest.raises(InvalidSettingsError, match="Two models"):
        Vid2VidPipeline(model="zeroscope", generator_model="someone/else", models="tiny", device="cpu")


@pytest.mark.parametrize("name", [p.name for p in catalogue.GENERATORS])
def test_every_generator_preset_runs_end_to_end_on_its_tiny_twin(name, tmp_path):
    preset = catalogue.generator_preset(name)
    if preset.backend == "modelscope":
        pytest.importorskip("modelscope", reason='needs the [modelscope] extra')
        pytest.importorskip("open_clip", reason='needs the [modelscope] extra')
    pipeline = Vid2VidPipeline(model=name, models="tiny", device="cpu", output_dir=tmp_path, seed=11)
    size = dict(SMALL_VIDEO, num_steps=2) if preset.backend == "modelscope" else SMALL_VIDEO
    if preset.backend == "modelscope":
        size.update(height=64, width=64)  # the original UNet works in multiples of 64 here
    reports = []
    result = pipeline.generate("a cat runs on the beach", on_progress=reports.append, **size)
    assert result.frames.shape[:1] == (4,) and result.frames.std() > 0
    expected_steps = size.get("num_steps", preset.settings().num_steps)
    assert [p.step for p in reports if p.stage == "denoise"] == list(range(1, expected_steps + 1))
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["models"]["generator"]["preset"] == name
    assert record["models"]["generator"]["backend"] == preset.backend
    assert record["settings"]["scheduler"] == preset.settings().scheduler
    assert record["settings"]["guidance_scale"] == preset.settings().guidance_scale
    again = pipeline.regenerate(result.run_dir)  # the same seed and settings give the same frames
    assert (again.frames == result.frames).all()


def test_real_ids_are_what_a_preset_records_and_loads(monkeypatch):
    generator, preset = catalogue.make_generator("animatediff-lightning", device="cpu")  # nothing loads here
    assert generator.model_id == catalogue.SD15_MODEL
    assert generator.motion_adapter == "ByteDance/AnimateDiff-Lightning"
    assert generator.adapter_file == "animatediff_lightning_4step_diffusers.safetensors"
    assert generator.describe()["scheduler_config"]["timestep_spacing"] == "trailing"
    assert preset.model_ids == [catalogue.SD15_MODEL, "ByteDance/AnimateDiff-Lightning"]
    zeroscope, _ = catalogue.make_generator("zeroscope", device="cpu")
    assert zeroscope.model_id == "cerspense/zeroscope_v2_576w" and zeroscope.variant is None


def test_cli_generate_with_a_non_default_preset_takes_its_defaults(tmp_path, capsys):
    out_dir = tmp_path / "runs"
    code = cli.main(["generate", "a red car on the street", "--model", "lightning", "--tiny", "--frames", "4",
                     "--height", "32", "--width", "32", "--seed", "5", "--output-dir", str(out_dir), "--quiet"])
    assert code == 0, capsys.readouterr().err
    record = json.loads(next(out_dir.glob("runs/*/run.json")).read_text())
    assert record["models"]["generator"]["preset"] == "animatediff-lightning"
    settings = record["settings"]
    assert (settings["num_steps"], settings["guidance_scale"], settings["scheduler"]) == (4, 1.0, "euler")
    assert settings["num_frames"] == 4  # given on the command line: it wins


def test_cli_old_generator_model_spelling_still_works_but_is_not_listed(tmp_path, capsys):
    from vid2vid_widgets.tiny import tiny_model_path

    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    help_text = capsys.readouterr().out
    assert "--model NAME_OR_ID" in help_text and "--generator-model" not in help_text and "--tiny" in help_text
    code = cli.main(["generate", "a dog", "--generator-model", tiny_model_path("text-to-video"), "--models", "tiny",
                     "--frames", "2", "--steps", "1", "--height", "32", "--width", "32", "--output-dir",
                     str(tmp_path), "--quiet"])
    assert code == 0, capsys.readouterr().err


def test_cli_unknown_model_is_one_clear_line(capsys):
    assert cli.main(["generate", "a dog", "--model", "sora", "--tiny", "--quiet"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "Unknown model 'sora'" in err and "vid2vid models" in err and "Traceback" not in err


def test_panel_model_dropdown_shows_license_applies_defaults_and_keeps_models_resident(tmp_path):
    from vid2vid_widgets.panel import Vid2VidPanel

    panel = Vid2VidPanel(models="tiny", autocaption=False, output_dir=tmp_path, num_frames=4, height=32, width=32,
                         seed=9, device="cpu")
    labels = dict((value, label) for label, value in panel.model.options)
    assert set(labels) >= {p.name for p in catalogue.GENERATORS}
    assert "CC-BY-NC-4.0 (non-commercial)" in labels["zeroscope-576w"] and "GB" in labels["zeroscope-576w"]
    assert panel.model.value == "modelscope-1.7b"

    panel.caption_text.value = "a dog runs in the park"
    panel.generate()
    finish(panel)
    first_key = panel.pipeline.generator.key

    panel.model.value = "animatediff-lightning"
    assert "creativeml" in panel.settings_form.model_info.value.lower()
    assert (panel.steps.value, panel.guidance.value, panel.scheduler.value) == (4, 1.0, "euler")
    assert panel.frames.value == 4 and panel.width.value == 32  # given to the panel: kept
    assert panel.backend.value == "animatediff"
    panel.generate()
    finish(panel)
    assert panel.error.value == "", panel.error.value
    record = panel.last_result.record.data
    assert record["models"]["generator"]["preset"] == "animatediff-lightning"
    second_key = panel.pipeline.generator.key

    loads = REGISTRY.total_loads
    panel.model.value = "modelscope-1.7b"  # back: still resident, nothing loads again
    panel.generate()
    finish(panel)
    assert REGISTRY.total_loads == loads and panel.error.value == ""
    assert REGISTRY.is_loaded(first_key) and REGISTRY.is_loaded(second_key)
    assert models.unload("animatediff") >= 1
    assert not REGISTRY.is_loaded(second_key) and REGISTRY.is_loaded(first_key)


def test_magic_model_option_reaches_the_panel():
    from vid2vid_widgets.magics import panel_from_args, parse_args

    panel = panel_from_args(parse_args("--model zeroscope --tiny --frames 6 --no-autocaption"))
    assert panel.model.value == "zeroscope-576w"
    assert (panel.width.value, panel.height.value, panel.frames.value) == (576, 320, 6)
    assert panel.pipeline.preset.name == "zeroscope-576w" and panel.pipeline.models == "tiny"


def test_captioners_resolve_by_name_id_or_folder():
    from vid2vid_widgets.tiny import tiny_model_path

    large = catalogue.make_captioner("blip-large", device="cpu")
    assert isinstance(large, BlipCaptioner) and large.model_id == "Salesforce/blip-image-captioning-large"
    tiny = catalogue.make_captioner("blip-large", models="tiny", device="cpu")
    assert tiny.model_id == tiny_model_path("captioner")
    assert catalogue.make_captioner(None, device="cpu").model_id == "Salesforce/blip-image-captioning-base"
    assert catalogue.make_captioner("someone/blip-ft", device="cpu").model_id == "someone/blip-ft"
    with pytest.raises(InvalidSettingsError, match="smolvlm2"):
        catalogue.make_captioner("gpt", device="cpu")


def test_smolvlm2_resolves_to_its_captioner_class():
    module = pytest.importorskip("vid2vid_widgets.captioning_smolvlm")
    captioner = catalogue.make_captioner("smolvlm2", device="cpu")
    assert isinstance(captioner, module.SmolVLMCaptioner)
    assert captioner.model_id == "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    import transformers

    if not hasattr(transformers, "SmolVLMForConditionalGeneration"):  # transformers 4 (the lowest set)
        pytest.skip("this transformers has no SmolVLM2, so its tiny model cannot be built")
    pipeline = Vid2VidPipeline(captioner="smolvlm2-256m", models="tiny", device="cpu")
    assert isinstance(pipeline.captioner, module.SmolVLMCaptioner)
