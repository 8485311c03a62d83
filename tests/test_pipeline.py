"""Vid2VidPipeline end to end with tiny models: captions, runs, residency, reproducibility, faults."""

import json
import threading

import numpy as np
import pytest
import torch

from vid2vid_widgets import video
from vid2vid_widgets.errors import BusyError, GenerationCancelled, GPUOutOfMemoryError, InvalidVideoError
from vid2vid_widgets.generation.base import GeneratedFrames
from vid2vid_widgets.models import REGISTRY
from vid2vid_widgets.pipeline import Vid2VidPipeline
from vid2vid_widgets.progress import CancelToken
from vid2vid_widgets.runs import RUN_FILE

SMALL = dict(num_frames=4, num_steps=2, height=32, width=32)


@pytest.fixture
def pipe(tmp_path):
    return Vid2VidPipeline(models="tiny", output_dir=tmp_path / "out", caption_frames=3, **SMALL)


def _run_dirs(pipe):
    return sorted(p.name for p in pipe.store.runs_dir.iterdir()) if pipe.store.runs_dir.exists() else []


def test_caption_of_a_real_video_covers_the_whole_video(pipe, bikes):
    result = pipe.caption(bikes)
    caption = result.caption
    assert len(caption.per_frame) == 3 and caption.text in [c.strip().capitalize() for c in caption.per_frame] + caption.per_frame
    assert caption.timestamps == sorted(caption.timestamps)
    assert caption.timestamps[-1] - caption.timestamps[0] > result.video.info.duration / 3
    assert result.video.info.width == 640 and result.timings["total"] > 0


def test_run_saves_a_browser_safe_video_and_a_reproducible_record(pipe, bikes):
    result = pipe.run(bikes, seed=11)
    facts = video.inspect_mp4(result.video_path)
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p" and facts["moov_before_mdat"]
    assert facts["frames"] == 4 and result.frames.shape == (4, 32, 32, 3) and result.frames.dtype == np.uint8
    data = json.loads((result.run_dir / RUN_FILE).read_text())
    assert data["settings"]["seed"] == 11 and data["settings"]["prompt"] == result.caption.text
    assert data["caption"]["per_frame"] == result.caption.per_frame
    assert data["input"]["name"] == "bikes.mp4" and data["input"]["sha256_head"]
    assert data["models"]["generator"]["model_id"] and data["models"]["captioner"]["model_id"]
    assert {"generate", "encode", "total"} <= set(data["timings"])


def test_models_stay_resident_across_runs_and_pipelines(pipe, tmp_path):
    pipe.generate("a red fox", seed=1)
    loads = REGISTRY.total_loads
    resident = {key: id(model) for key, model in REGISTRY._models.items()}
    second = Vid2VidPipeline(models="tiny", output_dir=tmp_path / "other", **SMALL)
    second.generate("a blue fox", seed=2)
    pipe.generate("a green fox", seed=3)
    assert REGISTRY.total_loads == loads, "a second run or pipeline loaded weights again"
    assert {key: id(model) for key, model in REGISTRY._models.items()} == resident


def test_same_seed_same_frames_and_regenerate_from_run_json(pipe):
    first = pipe.generate("waves on a beach", seed=5)
    second = pipe.generate("waves on a beach", seed=5)
    np.testing.assert_array_equal(first.frames, second.frames)
    other = pipe.generate("waves on a beach", seed=6)
    assert not np.array_equal(first.frames, other.frames)
    again = pipe.regenerate(first.run_dir)
    np.testing.assert_array_equal(again.frames, first.frames)
    assert again.run_dir != first.run_dir and first.video_path.exists()


def test_random_seed_is_recorded_and_reproduces(pipe):
    first = pipe.generate("a city at night")
    assert isinstance(first.seed, int)
    np.testing.assert_array_equal(pipe.generate("a city at night", seed=first.seed).frames, first.frames)


def test_progress_reaches_the_end_of_every_stage(pipe):
    seen = []
    pipe.generate("a red fox", seed=1, on_progress=seen.append)
    denoise = [p for p in seen if p.stage == "denoise"]
    assert [p.step for p in denoise] == [1, 2] and denoise[-1].fraction == 1.0
    assert any(p.stage == "encode" and p.fraction == 1.0 for p in seen)


def test_cancel_mid_run_leaves_no_run_folder(pipe):
    token = CancelToken()

    def cancel_after_first_step(progress):
        if progress.stage == "denoise" and progress.step == 1:
            token.cancel()

    with pytest.raises(GenerationCancelled):
        pipe.generate("a red fox", seed=1, on_progress=cancel_after_first_step, cancel=token, num_steps=3)
    assert _run_dirs(pipe) == [] and pipe.history() == []
    assert pipe.generate("a red fox", seed=1).video_path.exists()  # usable afterwards


class _Blocking:
    """A generator that waits until released: lets a test start a second run during the first."""

    backend, model_id = "blocking", "none"

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()

    def load(self):
        pass

    def describe(self):
        return {"backend": self.backend, "model_id": self.model_id}

    def generate(self, settings, *, on_progress=None, cancel=None):
        self.started.set()
        self.release.wait(10)
        frames = np.zeros((2, 16, 16, 3), np.uint8)
        return GeneratedFrames(frames, settings, model=self.describe())


def test_a_second_run_while_one_is_running_is_refused(tmp_path):
    blocking = _Blocking()
    pipe = Vid2VidPipeline(models="tiny", generator=blocking, output_dir=tmp_path)
    worker = threading.Thread(target=pipe.generate, args=("first",))
    worker.start()
    assert blocking.started.wait(10)
    with pytest.raises(BusyError, match="already in progress"):
        pipe.generate("second")
    blocking.release.set()
    worker.join(10)
    assert len(pipe.history()) == 1


class _OutOfMemory(_Blocking):
    def generate(self, settings, *, on_progress=None, cancel=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_cuda_out_of_memory_names_what_to_lower_and_the_next_run_works(tmp_path):
    pipe = Vid2VidPipeline(models="tiny", generator=_OutOfMemory(), output_dir=tmp_path, **SMALL)
    with pytest.raises(GPUOutOfMemoryError, match="frames.*size"):
        pipe.generate("a red fox")
    assert _run_dirs(pipe) == []
    from vid2vid_widgets.generation import make_generator

    pipe.generator = make_generator(models="tiny", device="cpu", dtype="float32")
    assert pipe.generate("a red fox", seed=1).video_path.exists()


def test_encoder_failure_removes_the_half_written_run(pipe, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video, "encode_mp4", broken)
    with pytest.raises(OSError):
        pipe.generate("a red fox", seed=1)
    assert _run_dirs(pipe) == []


def test_uploaded_bytes_are_stored_safely_and_a_bad_upload_is_refused(pipe, bikes):
    loaded = pipe.load_video(bikes.read_bytes(), name="../../escape me.mp4")
    assert loaded.path.parent == pipe.store.root / "uploads" and loaded.info.width == 640
    with pytest.raises(InvalidVideoError, match="notes.mp4"):
        pipe.load_video(b"this is not a video", name="notes.mp4")
    assert sorted(p.name for p in loaded.path.parent.iterdir()) == [loaded.path.name]  # junk not kept


def test_preview_is_small_and_browser_safe(pipe, bunny):
    path = pipe.preview(bunny, max_side=160)
    facts = video.inspect_mp4(path)
    assert max(facts["width"], facts["height"]) <= 160 and facts["codec"] == "h264"
    assert pipe.preview(bunny, max_side=160) == path  # cached, not encoded twice
