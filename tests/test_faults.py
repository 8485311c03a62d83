"""Issue 8, part 2: faults during a lesson. A clear message, a panel that keeps working, nothing lost.

Cancel, CUDA out of memory, an output folder that cannot be written or a disk that fills up, two
Generate clicks at once, the process killed half-way through a run, and the security rules (upload
names, shell commands, remote code, pickles). Each fault comes after a finished run, and that run must
be byte-for-byte as it was. Basic versions of some of these live in test_pipeline.py (cancel, busy,
out of memory with a swapped generator), test_runs.py (disk full at run.json) and test_video.py (disk
full in the encoder); here they are checked through the pipeline and the panel as a person meets them.
"""

from __future__ import annotations

import ast
import errno
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import vid2vid_widgets
from conftest import finish, simulate_upload  # tests/ is on sys.path (pytest's prepend mode)
import media as _media  # tests/media.py
from vid2vid_widgets import oom, runs, video
from vid2vid_widgets.errors import GPUOutOfMemoryError, InvalidVideoError, OutputNotWritableError, Vid2VidError
from vid2vid_widgets.generation import make_generator
from vid2vid_widgets.models import REGISTRY
from vid2vid_widgets.panel import Vid2VidPanel
from vid2vid_widgets.pipeline import Vid2VidPipeline
from vid2vid_widgets.runs import RUN_FILE, RunStore

SMALL = dict(num_frames=4, num_steps=2, height=32, width=32)
PACKAGE = Path(vid2vid_widgets.__file__).parent


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return _media.make_test_video(tmp_path_factory.mktemp("faults-media") / "lesson.mp4", size=(64, 48), seconds=2)


def snapshot(result) -> tuple:
    return result.run_dir.name, result.video_path.read_bytes(), (result.run_dir / RUN_FILE).read_text("utf-8")


def folder_contents(root: Path) -> list:
    """Every file under the runs folder, hidden temporaries included."""
    runs_dir = root / "runs"
    return sorted(str(p.relative_to(runs_dir)) for p in runs_dir.rglob("*")) if runs_dir.exists() else []


class FailsOnce:
    """The real tiny generator, except that its next ``generate`` raises ``error`` (then it works again)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.real = make_generator(models="tiny", device="cpu", dtype="float32")
        self.backend, self.model_id = self.real.backend, self.real.model_id
        self.error = error
        self.calls = 0

    def load(self) -> None:
        self.real.load()

    def describe(self) -> dict:
        return self.real.describe()

    def generate(self, settings, *, on_progress=None, cancel=None):
        self.calls += 1
        error, self.error = self.error, None
        if error is not None:
            raise error
        return self.real.generate(settings, on_progress=on_progress, cancel=cancel)


def cuda_oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 14.75 GiB total)")


def make_panel(folder: Path, generator=None, **kwargs) -> Vid2VidPanel:
    pipe = Vid2VidPipeline(models="tiny", generator=generator, output_dir=folder, caption_frames=2, **SMALL)
    return Vid2VidPanel(pipe, autocaption=False, **kwargs)


def panel_generates(panel: Vid2VidPanel, words: str = "a red fox in the snow"):
    panel.caption_text.value = words
    panel.generate_button.click()
    finish(panel)
    assert panel.error.value == "", panel.error.value
    return panel.last_result


# -- cancel --------------------------------------------------------------------------------------

def test_cancel_mid_run_presents_no_half_run_and_keeps_the_earlier_one(tmp_path):
    panel = make_panel(tmp_path / "out")
    earlier = panel_generates(panel)
    before = (snapshot(earlier), panel.output_video.value, panel.seed_used.value, len(panel.history.children))
    original = panel._on_progress

    def click_cancel_at_the_first_step(progress):
        original(progress)
        if progress.stage == "denoise" and progress.step == 1:
            panel.cancel_button.click()

    panel._on_progress = click_cancel_at_the_first_step
    panel.caption_text.value = "a run that is cancelled"
    panel.steps.value = 4
    panel.generate_button.click()
    finish(panel)
    assert "Cancelled: nothing was saved" in panel.status.value and panel.error.value == ""
    assert panel.last_result is earlier and panel.runs == [earlier]
    assert (snapshot(earlier), panel.output_video.value, panel.seed_used.value, len(panel.history.children)) == before
    assert folder_contents(tmp_path / "out") == sorted([earlier.run_dir.name, f"{earlier.run_dir.name}/output.mp4",
                                                       f"{earlier.run_dir.name}/run.json"])
    assert [r.name for r in panel.pipeline.history()] == [earlier.run_dir.name]
    panel._on_progress = original
    panel_generates(panel, "after the cancel")


# -- CUDA out of memory --------------------------------------------------------------------------

def test_out_of_memory_in_the_pipeline_frees_the_cache_keeps_models_and_the_next_run_works(tmp_path, monkeypatch):
    freed = []
    monkeypatch.setattr(oom, "free_cuda_cache", lambda: freed.append(True))  # the one out-of-memory guard
    generator = FailsOnce()
    pipe = Vid2VidPipeline(models="tiny", generator=generator, output_dir=tmp_path, **SMALL)
    earlier = pipe.generate("a red fox", seed=1)
    loads = REGISTRY.total_loads
    generator.error = cuda_oom()
    with pytest.raises(GPUOutOfMemoryError) as caught:
        pipe.generate("a red fox", seed=2)
    message = str(caught.value)
    assert "ran out of memory" in message and "Lower the frames, the size" in message
    assert "models are still loaded" in message
    assert freed, "the CUDA cache was not freed"
    assert REGISTRY.is_loaded(generator.real.key) and not pipe.busy
    assert [r.name for r in pipe.history()] == [earlier.run_dir.name]
    again = pipe.generate("a red fox", seed=1)
    np.testing.assert_array_equal(again.frames, earlier.frames)  # same models, same result
    assert REGISTRY.total_loads == loads  # nothing was loaded again


def test_out_of_memory_in_the_panel_says_what_to_lower_and_the_next_click_works(tmp_path, monkeypatch):
    freed = []
    monkeypatch.setattr(oom, "free_cuda_cache", lambda: freed.append(True))  # the one out-of-memory guard
    generator = FailsOnce()
    panel = make_panel(tmp_path / "out", generator)
    earlier = panel_generates(panel)
    before = (snapshot(earlier), panel.output_video.value)
    loads = REGISTRY.total_loads
    generator.error = cuda_oom()
    panel.caption_text.value = "a much bigger video"
    panel.generate_button.click()
    finish(panel)
    assert isinstance(panel.last_error, GPUOutOfMemoryError) and freed
    assert "ran out of memory" in panel.error.value and "Lower the frames, the size" in panel.error.value
    assert "Something went wrong" not in panel.error.value
    assert (snapshot(earlier), panel.output_video.value) == before and panel.runs == [earlier]
    assert not panel.generate_button.disabled
    panel_generates(panel, "a smaller video")
    assert REGISTRY.total_loads == loads and len(panel.runs) == 2


# -- output folder not writable, disk full ------------------------------------------------------

def _disk_full_in_the_encoder(monkeypatch):
    real_mux, calls = video._encoding._mux, [0]

    def mux_until_full(container, packets):
        calls[0] += 1
        if calls[0] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_mux(container, packets)

    monkeypatch.setattr(video._encoding, "_mux", mux_until_full)


def _permission_denied_in_the_run_folder(monkeypatch):
    def deny(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(video._encoding.tempfile, "mkstemp", deny)  # where encode_mp4 opens its file


def _disk_full_at_run_json(monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs.os, "fsync", full)  # run.json's temporary file is written, then cannot be synced


WRITE_FAULTS = {
    "disk full while encoding": (_disk_full_in_the_encoder, "disk is full"),
    "permission denied": (_permission_denied_in_the_run_folder, "permission was denied"),
    "disk full at run.json": (_disk_full_at_run_json, "No space left on device"),
}


@pytest.mark.parametrize("fault", list(WRITE_FAULTS))
def test_write_fault_in_the_pipeline_leaves_no_run_folder_and_earlier_runs_intact(tmp_path, monkeypatch, fault):
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path, **SMALL)
    earlier = pipe.generate("a red fox", seed=1)
    before, contents = snapshot(earlier), folder_contents(tmp_path)
    inject, words = WRITE_FAULTS[fault]
    with monkeypatch.context() as patch:
        inject(patch)
        with pytest.raises(OutputNotWritableError) as caught:
            pipe.generate("a blue fox", seed=2)
    assert words in str(caught.value)
    assert "folder" in str(caught.value)  # says where to go instead
    assert folder_contents(tmp_path) == contents  # no partial run, no temporary file left
    assert snapshot(earlier) == before and [r.name for r in pipe.history()] == [earlier.run_dir.name]
    assert pipe.generate("a blue fox", seed=2).video_path.exists()


@pytest.mark.parametrize("fault", list(WRITE_FAULTS))
def test_write_fault_in_the_panel_shows_a_message_and_not_a_result(tmp_path, monkeypatch, fault):
    panel = make_panel(tmp_path / "out")
    earlier = panel_generates(panel)
    before = (snapshot(earlier), panel.output_video.value, panel.seed_used.value, len(panel.history.children))
    contents = folder_contents(tmp_path / "out")
    inject, words = WRITE_FAULTS[fault]
    with monkeypatch.context() as patch:
        inject(patch)
        panel.caption_text.value = "a blue fox"
        panel.generate_button.click()
        finish(panel)
    assert isinstance(panel.last_error, OutputNotWritableError)
    assert words in panel.error.value and "Traceback" not in panel.error.value
    assert "Done" not in panel.status.value and panel.runs == [earlier]
    assert (snapshot(earlier), panel.output_video.value, panel.seed_used.value, len(panel.history.children)) == before
    assert folder_contents(tmp_path / "out") == contents
    panel.past_runs_button.click()
    assert "1 run(s)" in panel.past_runs.children[0].value
    panel_generates(panel, "once there is room again")


def test_an_output_folder_that_cannot_be_created_is_explained_in_the_panel(tmp_path, good):
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("homework")
    panel = make_panel(blocker / "runs")
    panel.caption_text.value = "a red fox"
    panel.generate_button.click()
    finish(panel)
    assert isinstance(panel.last_error, OutputNotWritableError)
    assert "Cannot write" in panel.error.value and "choose another output folder" in panel.error.value
    assert panel.output_video.value == b"" and panel.runs == [] and blocker.read_text() == "homework"
    # Uploads need the folder too: the same message, not a crash.
    simulate_upload(panel.upload, "clip.mp4", good.read_bytes())
    finish(panel)
    assert isinstance(panel.last_error, OutputNotWritableError) and "choose another output folder" in panel.error.value
    assert not panel.busy and not panel.load_button.disabled
    # A video loaded by path still shows and captions: only saving needs the output folder.
    panel.last_error = None
    panel.load(good)
    finish(panel)
    assert panel.last_error is None and panel.input_video.value[4:8] == b"ftyp"
    assert panel.caption_text.value.strip()


# -- two Generate clicks at once -------------------------------------------------------------------

def test_two_generate_clicks_at_once_make_one_run(tmp_path):
    generator = FailsOnce()
    panel = make_panel(tmp_path / "out", generator)
    assert panel._runner.threaded
    panel.caption_text.value = "a red fox"
    panel.generate_button.click()
    panel.generate_button.click()  # a double click: the first run has just started in its thread
    finish(panel)
    assert panel.error.value == "" and generator.calls == 1
    assert len(panel.runs) == 1 and len(panel.history.children) == 1
    assert [p.name for p in (tmp_path / "out" / "runs").iterdir()] == [panel.runs[0].run_dir.name]


# -- the process killed half-way through a run --------------------------------------------------

CHILD = textwrap.dedent("""
    # Two runs in flight in one process (two panels on one folder), then SIGKILL: one run is half-way
    # through encoding, the other has its output.mp4 but no run.json yet.
    import sys, threading, time, warnings
    warnings.simplefilter("ignore")
    import torch
    torch.set_num_threads(1)
    from vid2vid_widgets import runs, video
    from vid2vid_widgets.pipeline import Vid2VidPipeline

    reached = threading.Barrier(2, action=lambda: print("HALF-WRITTEN", flush=True))

    def stop_here(*args, **kwargs):
        reached.wait()
        time.sleep(600)  # the parent kills us here

    real_mux, calls = video._encoding._mux, [0]
    def slow_mux(container, packets):
        real_mux(container, packets)
        if threading.current_thread().name == "encoding":
            calls[0] += 1
            if calls[0] == 2:  # a partial mp4 is on disk, inside the run folder
                stop_here()
    video._encoding._mux = slow_mux
    runs.write_json_atomic = stop_here  # output.mp4 complete, run.json not written

    def run(words):
        Vid2VidPipeline(models="tiny", output_dir=sys.argv[1], num_frames=6, num_steps=2, height=32,
                        width=32).generate(words, seed=1)
    for name in ("encoding", "before-run-json"):
        threading.Thread(target=run, args=(name,), name=name, daemon=True).start()
    time.sleep(600)
""")


def _kill_mid_run(out: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    timer = threading.Timer(240, child.kill)  # never hang the test run
    timer.start()
    try:
        line = child.stdout.readline()
        assert line.strip() == "HALF-WRITTEN", "the child finished or failed before reaching the kill point"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        timer.cancel()
        child.kill()
        child.stdout.close()


@pytest.mark.slow
def test_runs_killed_half_way_are_never_shown_as_complete(tmp_path):
    out = tmp_path / "out"
    pipe = Vid2VidPipeline(models="tiny", output_dir=out, **SMALL)
    earlier = pipe.generate("a finished run", seed=3)
    before = snapshot(earlier)
    _kill_mid_run(out)
    half = {"encoding" if p.name.endswith("-encoding") else "json": p
            for p in (out / "runs").iterdir() if p.name != earlier.run_dir.name}
    assert set(half) == {"encoding", "json"}, half  # really killed with both runs mid-way
    assert not any((p / RUN_FILE).exists() for p in half.values())
    assert any(p.name.endswith(".partial.mp4") for p in half["encoding"].iterdir())
    assert not (half["encoding"] / "output.mp4").exists()  # never half an mp4 under the real name
    assert (half["json"] / "output.mp4").exists()

    # A new session on the same folder: history and the panel show the finished run only.
    assert [r.name for r in RunStore(out).history()] == [earlier.run_dir.name]
    assert all(RunStore.load(p) is None for p in half.values())
    with pytest.raises(Vid2VidError, match="not a complete run folder"):
        Vid2VidPipeline(models="tiny", output_dir=out).regenerate(half["json"])
    panel = make_panel(out)
    panel.past_runs_button.click()
    rows = panel.past_runs.children
    assert "1 run(s)" in rows[0].value and "a finished run" in rows[1].children[-1].value
    assert snapshot(earlier) == before
    after = panel_generates(panel, "the next lesson")
    assert {r.name for r in RunStore(out).history()} == {earlier.run_dir.name, after.run_dir.name}


# -- security --------------------------------------------------------------------------------------

def _package_calls():
    """(file, line, call) for every call in the package's source."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                yield path.relative_to(PACKAGE.parent), node.lineno, node


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def test_remote_code_is_never_trusted():
    offenders = []
    for where, line, call in _package_calls():
        value = _keyword(call, "trust_remote_code")
        if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
            offenders.append(f"{where}:{line}")
        if any(kw.arg is None for kw in call.keywords) and _dotted(call.func).endswith("from_pretrained"):
            offenders.append(f"{where}:{line} (**kwargs into from_pretrained hides what is passed)")
    assert offenders == []


def test_no_shell_command_is_ever_built():
    offenders = []
    for where, line, call in _package_calls():
        name = _dotted(call.func)
        shell = _keyword(call, "shell")
        if name in ("os.system", "os.popen", "os.execl", "os.execlp", "os.spawnl", "commands.getoutput") or (
            shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False)
        ):
            offenders.append(f"{where}:{line}: {name}")
    assert offenders == []
    # No subprocess at all: nothing in the package needs one, so user text can never reach one.
    uses = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
            if "subprocess" in p.read_text(encoding="utf-8")]
    assert uses == []


def test_nothing_is_unpickled_and_checkpoints_load_weights_only():
    offenders = []
    for where, line, call in _package_calls():
        name = _dotted(call.func)
        if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads",
                    "joblib.load", "cloudpickle.load", "cloudpickle.loads", "marshal.loads", "eval", "exec"):
            offenders.append(f"{where}:{line}: {name}")
        allow = _keyword(call, "allow_pickle")
        if name in ("np.load", "numpy.load") and allow is not None and not (
            isinstance(allow, ast.Constant) and allow.value is False
        ):
            offenders.append(f"{where}:{line}: {name}(allow_pickle=...)")
        if name == "torch.load":
            flag = _keyword(call, "weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                offenders.append(f"{where}:{line}: torch.load without weights_only=True")
    assert offenders == []


class _Booby:
    """Unpickling this creates a file: proof that something unpickled the upload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("name", ["lesson.mp4", "model.pt", "weights.pkl"])
def test_an_uploaded_pickle_is_refused_and_never_unpickled(tmp_path, good, name):
    marker = tmp_path / "unpickled-marker"
    payload = pickle.dumps({"frames": _Booby(marker)})
    panel = make_panel(tmp_path / "out")
    panel.load(str(good))
    finish(panel)
    earlier = panel_generates(panel)
    before = snapshot(earlier)
    simulate_upload(panel.upload, name, payload)
    finish(panel)
    assert isinstance(panel.last_error, InvalidVideoError) and "not a video" in panel.error.value
    assert not marker.exists()
    assert not (tmp_path / "out" / "uploads" / name).exists()  # refused uploads are not kept
    assert snapshot(earlier) == before and panel.loaded.name == "lesson.mp4"
    # Through the path box too.
    dropped = tmp_path / name
    dropped.write_bytes(payload)
    panel.load(str(dropped))
    finish(panel)
    assert isinstance(panel.last_error, InvalidVideoError) and not marker.exists()
