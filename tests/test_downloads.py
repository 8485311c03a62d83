"""downloads.fetch: only the needed files, progress in bytes, Cancel between files, resume, fast failure offline.

The hub library runs for real (its cache, ``.incomplete`` files, Range requests, metadata checks)
against ``hub_server.FakeHub`` on 127.0.0.1, which serves the tiny models' folders under hub ids.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from hub_server import FakeHub, SilentServer, closed_port_url  # tests/hub_server.py
from vid2vid_widgets import downloads
from vid2vid_widgets._panel_text import progress_text
from vid2vid_widgets.captioning import BlipCaptioner
from vid2vid_widgets.errors import GenerationCancelled, ModelLoadError
from vid2vid_widgets.generation.diffusers_t2v import DiffusersTextToVideo
from vid2vid_widgets.models import REGISTRY
from vid2vid_widgets.progress import CancelToken, Progress
from vid2vid_widgets.tiny import tiny_model_path

# Well above one attempt (refused at once, or one 1 s timeout, plus loading the processor classes),
# far below the hub library's retries (about 23 s per file, 220 s for a captioner before this module).
FAST = 15.0
REPO = "acme/tiny-blip"
# Files a real BLIP repository also holds that the loader never reads.
UNREAD = {"pytorch_model.bin": b"pickle" * 100, "tf_model.h5": b"tf" * 100, "onnx/model.onnx": b"onnx" * 100}


@pytest.fixture()
def hub_env(tmp_path, monkeypatch):
    """An empty hub cache of our own, and the hub library asked for nothing outside the test."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return tmp_path / "hf" / "hub"


@pytest.fixture()
def hub(hub_env, monkeypatch):
    server = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.close()


@pytest.fixture(scope="module")
def blip_folder() -> Path:
    return Path(tiny_model_path("captioner"))


def weights(files):
    return [name for name in files if name.endswith((".safetensors", ".bin", ".h5", ".onnx"))]


# -- which files ----------------------------------------------------------------------------------

# The weight and config files of ali-vilab/text-to-video-ms-1.7b as the hub lists them.
T2V_LISTING = [
    ".gitattributes", "README.md", "model_index.json", "scheduler/scheduler_config.json",
    "text_encoder/config.json", "text_encoder/model.fp16.safetensors", "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin", "text_encoder/pytorch_model.fp16.bin",
    "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.bin", "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.bin",
    "vae/diffusion_pytorch_model.fp16.bin", "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
]
T2V_FOLDERS = ("scheduler", "text_encoder", "tokenizer", "unet", "vae")


def test_the_fp16_variant_downloads_only_fp16_safetensors():
    chosen = downloads.select_files(T2V_LISTING, T2V_FOLDERS, "fp16")
    assert weights(chosen) == ["text_encoder/model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
                               "vae/diffusion_pytorch_model.fp16.safetensors"]
    assert "tokenizer/vocab.json" in chosen and "scheduler/scheduler_config.json" in chosen
    assert "README.md" not in chosen and "model_index.json" not in chosen  # top level: not read


def test_without_a_variant_the_default_safetensors_and_pickles_only_when_nothing_else():
    assert weights(downloads.select_files(T2V_LISTING, ("unet",), None)) == ["unet/diffusion_pytorch_model.safetensors"]
    # A folder without the asked-for variant gets its default files (what the loader falls back to).
    assert weights(downloads.select_files(["model.safetensors", "config.json"], ("",), "fp16")) == ["model.safetensors"]
    assert weights(downloads.select_files(["pytorch_model.bin", "config.json"], ("",), None)) == ["pytorch_model.bin"]
    sharded = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
               "model.safetensors.index.json", "onnx/model.onnx", "tf_model.h5"]
    assert downloads.select_files(sharded) == sharded[:3]
    assert downloads.weight_variant("unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors") == "fp16"


# -- downloading ------------------------------------------------------------------------------------


def test_a_hub_id_is_fetched_with_byte_progress_then_loaded_and_captions(hub, hub_env, blip_folder, bikes):
    from vid2vid_widgets import video

    served = hub.add_folder(REPO, blip_folder, UNREAD)
    reports = []
    with downloads.reporting(reports.append):
        folder = downloads.fetch(REPO)
    assert Path(folder).parent.parent == hub_env / "models--acme--tiny-blip"  # the hub's own cache layout
    needed = {name: data for name, data in served.items() if name not in UNREAD}
    for name, data in needed.items():
        assert (Path(folder) / name).read_bytes() == data
    assert not any(hub.gets(name) for name in UNREAD)  # never asked for what the loader does not read
    total = sum(len(data) for data in needed.values())
    assert {r.stage for r in reports} == {"download"} and reports[-1].step == reports[-1].total == total
    assert [r.step for r in reports] == sorted(r.step for r in reports) and reports[0].step == 0
    assert "of" in progress_text(reports[-1]) and "KB" in progress_text(reports[-1])

    # The captioner by hub id: the same fetch, then loads from the cache folder and captions.
    REGISTRY.unload("captioner")
    asked = len(hub.requests)
    caption = BlipCaptioner(REPO, device="cpu").caption_frames(video.sample_frames(bikes, 2, max_side=64).frames)
    assert caption.text
    # Everything was cached: one listing request, no file request.
    assert [method for method, _, _ in hub.requests[asked:]] == ["GET"]
    REGISTRY.unload("captioner")


def test_cancel_stops_between_files_and_the_next_fetch_gets_only_the_rest(hub, blip_folder):
    served = hub.add_folder(REPO, blip_folder)
    token = CancelToken()

    def cancel_after_first_file(report: Progress) -> None:
        if report.step > 0:
            token.cancel()  # the person presses Cancel while the second file is due

    with downloads.reporting(cancel_after_first_file, token), pytest.raises(GenerationCancelled):
        downloads.fetch(REPO)
    fetched_first = [name for name in served if hub.gets(name)]
    assert len(fetched_first) == 1

    folder = downloads.fetch(REPO)
    assert len(hub.gets(fetched_first[0])) == 1  # kept in the cache, not fetched again
    assert all(len(hub.gets(name)) == 1 for name in served)
    assert all((Path(folder) / name).read_bytes() == data for name, data in served.items())


def test_a_download_cut_off_midway_resumes_from_where_it_stopped(hub):
    # Big enough for the hub library to have written whole 10 MB chunks before the cut.
    big = np.random.default_rng(0).integers(0, 256, 13 * 2**20, dtype=np.uint8).tobytes()
    hub.repos[REPO] = {"config.json": b"{}", "model.safetensors": big}
    hub.cut["model.safetensors"] = 12 * 2**20  # the network drops after 12 MB
    folder = downloads.fetch(REPO)
    first, retry = hub.gets("model.safetensors")
    assert first is None and retry.startswith("bytes=") and 0 < int(retry[6:].rstrip("-")) <= 12 * 2**20
    assert (Path(folder) / "model.safetensors").read_bytes() == big


def test_a_failed_download_keeps_the_finished_files_for_the_next_try(hub, blip_folder):
    served = hub.add_folder(REPO, blip_folder)
    big = max(served, key=lambda name: len(served[name]))
    hub.cut[big] = len(served[big]) // 2
    hub.broken.add(big)  # this time every retry fails too
    with pytest.raises(downloads.DownloadError, match=f"downloading {big} .* failed"):
        downloads.fetch(REPO)
    finished = [name for name in served if name != big and hub.gets(name)]
    hub.broken.clear()  # the network is back
    folder = downloads.fetch(REPO)
    assert all(len(hub.gets(name)) == 1 for name in finished)  # not fetched again
    assert (Path(folder) / big).read_bytes() == served[big]


def test_diffusers_backend_fetches_its_component_folders_by_hub_id(hub, tmp_path):
    folder = Path(tiny_model_path("text-to-video"))
    hub.add_folder("acme/tiny-t2v", folder, {"README.md": b"# card", "unet/diffusion_pytorch_model.bin": b"x" * 99})
    generator = DiffusersTextToVideo("acme/tiny-t2v", device="cpu")
    try:
        generator.load()
        assert not hub.gets("diffusion_pytorch_model.bin") and not hub.gets("README.md")
        assert hub.gets("unet/diffusion_pytorch_model.safetensors")
    finally:
        REGISTRY.unload("text-to-video")


def test_local_folders_never_touch_the_hub(hub, blip_folder):
    assert downloads.fetch(str(blip_folder)) == str(blip_folder)
    assert hub.requests == []


# -- no hub --------------------------------------------------------------------------------------


def test_a_closed_port_fails_within_seconds_with_the_advice(hub_env, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    REGISTRY.unload("captioner")
    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        BlipCaptioner("Salesforce/blip-image-captioning-base", device="cpu").load()
    assert time.perf_counter() - started < FAST
    message = str(info.value)
    assert "'Salesforce/blip-image-captioning-base'" in message
    assert "HF_HOME" in message and "HF_HUB_OFFLINE" in message and "local folder" in message
    assert "not in the hub cache" in message


def test_a_hub_that_never_answers_is_asked_once_and_given_up_after_the_timeout(hub_env, monkeypatch):
    server = SilentServer()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv(downloads.TIMEOUT_ENV, "1")
    try:
        started = time.perf_counter()
        with pytest.raises(downloads.DownloadError, match="did not give the file list"):
            downloads.fetch("acme/anything")
        assert time.perf_counter() - started < FAST
        assert len(server.connections) == 1  # no retries
    finally:
        server.close()


def test_without_the_hub_a_cached_model_still_loads(hub, blip_folder, monkeypatch):
    hub.add_folder(REPO, blip_folder)
    folder = downloads.fetch(REPO)
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    assert downloads.fetch(REPO) == folder  # the hub does not answer, the cache does
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert downloads.fetch(REPO) == folder
    with pytest.raises(downloads.DownloadError, match="HF_HUB_OFFLINE"):
        downloads.fetch("acme/never-downloaded")


def test_download_progress_text_shows_size_speed_and_time_left():
    report = Progress("download", 300 * 2**20, 1000 * 2**20, 10.0, already=100 * 2**20)
    assert progress_text(report) == ("Downloading the model: 300.0 MB of 1000.0 MB · 20.0 MB/s · about 0:35 left")


# -- through the pipeline, the command line and the panel -------------------------------------------


def test_pipeline_reports_the_download_then_the_load_and_cancel_stops_it(hub, blip_folder, bikes, tmp_path):
    from vid2vid_widgets.pipeline import Vid2VidPipeline

    hub.add_folder(REPO, blip_folder)
    REGISTRY.unload("captioner")
    pipe = Vid2VidPipeline(captioner=BlipCaptioner(REPO, device="cpu"), models="tiny", output_dir=tmp_path,
                           caption_frames=2)
    token = CancelToken()

    def press_cancel_when_the_download_starts(report: Progress) -> None:
        if report.stage == "download":
            token.cancel()

    with pytest.raises(GenerationCancelled):
        pipe.caption(bikes, on_progress=press_cancel_when_the_download_starts, cancel=token)
    assert not any(method == "GET" and "/resolve/" in path for method, path, _ in hub.requests)

    reports = []
    assert pipe.caption(bikes, on_progress=reports.append).caption.text
    stages = [r.stage for r in reports]
    assert stages.index("download") > stages.index("load")  # "Loading the model" shows at once
    downloads_seen = [r for r in reports if r.stage == "download"]
    assert downloads_seen[-1].step == downloads_seen[-1].total > 0
    assert stages[-1] == "caption" and ("load", 1) in [(r.stage, r.step) for r in reports]
    REGISTRY.unload("captioner")


def test_cli_caption_offline_fails_fast_with_the_advice(hub_env, bikes, monkeypatch, capsys, tmp_path):
    from vid2vid_widgets import cli

    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    monkeypatch.delenv("VID2VID_MODELS", raising=False)
    REGISTRY.unload("captioner")
    started = time.perf_counter()
    code = cli.main(["caption", str(bikes), "--device", "cpu", "--quiet", "--output-dir", str(tmp_path)])
    assert code == cli.EXIT_ERROR and time.perf_counter() - started < FAST
    error = capsys.readouterr().err
    assert "Salesforce/blip-image-captioning-base" in error and "HF_HUB_OFFLINE" in error and "HF_HOME" in error


def test_cli_bar_counts_download_bytes_with_speed(capsys):
    from vid2vid_widgets.cli import TqdmProgress

    bar = TqdmProgress()
    for done in (2, 5, 10):
        bar(Progress("download", done * 2**20, 10 * 2**20, done / 10, already=2 * 2**20))
    err = capsys.readouterr().err
    assert "10.0M/10.0M" in err and "B/s" in err and "step" not in err
