"""``vid2vid batch`` / ``run_batch``: one row per input, resumable after SIGKILL, one batch per folder,
and the Ray engine giving what the local engine gives (a real local Ray, started once for this module)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from media import make_audio_only, make_test_video, truncate_copy
from vid2vid_widgets.batch import BatchLockedError, run_batch
from vid2vid_widgets.batch._table import LOCK_FILE, ResultsTable
from vid2vid_widgets.runs import RUN_FILE

TINY = dict(models="tiny", caption_frames=2, num_frames=4, height=32, width=32, num_steps=2, progress=False)
TINY_FLAGS = ["--models", "tiny", "--caption-frames", "2", "--frames", "4", "--height", "32", "--width", "32",
              "--steps", "2"]


def batch_command(*args) -> list:
    return [sys.executable, "-m", "vid2vid_widgets", "batch", *map(str, args)]


def cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(batch_command(*args), cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def decoded(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def complete_runs(out: Path) -> list:
    return sorted(p for p in (out / "runs").iterdir() if (p / RUN_FILE).exists()) if (out / "runs").exists() else []


@pytest.fixture
def distinct_videos(tmp_path) -> Path:
    """Six short, different videos (different content gives different input digests)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, pattern in enumerate(("testsrc2", "mandelbrot", "smptebars", "gradient", "noise", "testsrc2")):
        make_test_video(folder / f"clip{i}.mp4", size=(48 + 16 * i, 32), seconds=1, pattern=pattern)
    return folder


def test_folder_of_videos_and_junk_gives_one_row_per_file(tmp_path, sample_videos, bikes):
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(bikes, folder / "bikes.mp4")
    shutil.copy(sample_videos / "carphone_pristine.mp4", folder / "sub" / "phone.MOV")  # judged by content
    (folder / "notes.mp4").write_text("this is not a video")
    (folder / "empty.avi").write_bytes(b"")
    truncate_copy(bikes, folder / "cut.mp4", fraction=0.02)
    make_audio_only(folder / "sound.m4a")
    (folder / ".hidden.mp4").write_text("never an input")

    table = run_batch(folder, tmp_path / "out", caption_only=True, **TINY)

    assert isinstance(table, pd.DataFrame)
    status = dict(zip(table["name"], table["status"]))
    assert status == {"bikes.mp4": "ok", "cut.mp4": "error", "empty.avi": "error", "notes.mp4": "error",
                      "sound.m4a": "error", "phone.MOV": "ok"}
    errors = table[table["status"] == "error"]
    assert set(errors["error_type"]) == {"InvalidVideoError"}
    for name, message in zip(errors["name"], errors["message"]):
        assert name in message  # each message names its file and says what is wrong
    ok = table[table["status"] == "ok"]
    assert all(len(frames) == 2 and text for frames, text in zip(ok["per_frame_captions"], ok["caption"]))
    # the same table on disk, in both forms
    assert pd.read_parquet(tmp_path / "out" / "results.parquet")["status"].tolist() == table["status"].tolist()
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == table["name"].tolist()
    assert not (tmp_path / "out" / "runs").exists()  # captions only: nothing generated
    assert not (tmp_path / "out" / LOCK_FILE).exists()


@pytest.mark.slow
def test_csv_rows_choose_prompt_seed_and_strength(tmp_path, sample_videos, bikes):
    shutil.copy(bikes, tmp_path / "bikes.mp4")
    shutil.copy(sample_videos / "carphone_pristine.mp4", tmp_path / "phone.mp4")
    (tmp_path / "list.csv").write_text(
        "path,prompt,seed,strength\n"
        "bikes.mp4,a red fox in snow,11,\n"
        "phone.mp4,,12,0.5\n"
        "bikes.mp4,,not-a-number,\n"
        "missing.mp4,,,\n")

    table = run_batch(tmp_path / "list.csv", tmp_path / "out", prompt_template="{caption}, in watercolour",
                      seed=5, **TINY)

    rows = table.to_dict("records")
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "error"]
    fox, phone, bad_seed, missing = rows
    assert fox["prompt"] == "a red fox in snow" and fox["seed"] == 11
    assert phone["prompt"] == f"{phone['caption']}, in watercolour" and phone["seed"] == 12
    assert "'not-a-number' is not a whole number" in bad_seed["message"] and "row 4" in bad_seed["message"]
    assert missing["error_type"] == "InvalidVideoError" and "missing.mp4" in missing["message"]
    for row, strength in ((fox, 1.0), (phone, 0.5)):
        run = json.loads((Path(row["run_dir"]) / RUN_FILE).read_text())
        assert run["settings"]["seed"] == row["seed"] and run["settings"]["prompt"] == row["prompt"]
        assert run["settings"]["strength"] == strength
        assert Path(row["output_path"]).exists()
    assert json.loads((Path(phone["run_dir"]) / RUN_FILE).read_text())["follow"] is not None  # followed its input


@pytest.mark.slow
def test_caption_only_command_and_rerun_skips_what_is_done(tmp_path, sample_videos):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(sample_videos / name, folder / name)
    (folder / "readme.txt").write_text("notes")

    first = cli(folder, "-o", "out", "--caption-only", "--quiet", *TINY_FLAGS, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "2 done, 1 failed, 0 skipped" in first.stdout
    table = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert table["caption"].notna().sum() == 2 and not (tmp_path / "out" / "runs").exists()

    again = cli(folder, "-o", "out", "--caption-only", "--quiet", *TINY_FLAGS, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 done, 1 failed, 2 skipped" in again.stdout  # the junk file is tried again, the videos are not
    rerun = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert rerun["caption"].tolist() == table["caption"].tolist()


@pytest.mark.slow
def test_killed_batch_resumes_and_recomputes_nothing(tmp_path, distinct_videos):
    out = tmp_path / "out"
    log = out / "results.jsonl"
    process = subprocess.Popen(batch_command(distinct_videos, "-o", out, "--quiet", "--seed", "3", *TINY_FLAGS),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        deadline = time.monotonic() + 240
        while not (log.exists() and log.read_text().count("\n") >= 1):
            assert process.poll() is None, "the batch ended before any item finished"
            assert time.monotonic() < deadline, "no item finished in time"
            time.sleep(0.02)
        # While it runs, a second batch on the same folder is refused (this process is the second one).
        with pytest.raises(BatchLockedError, match="Another batch is already writing"):
            run_batch(distinct_videos, out, seed=3, **TINY)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
    done_before = {r["path"]: r for r in before if r["status"] == "ok"}
    assert 1 <= len(done_before) < 6, "the kill should land mid-batch"
    assert (out / LOCK_FILE).exists()  # left behind by the killed process: stale, taken over below
    times_before = {r["run_dir"]: Path(r["run_dir"], RUN_FILE).stat().st_mtime_ns for r in done_before.values()}

    table = run_batch(distinct_videos, out, seed=3, **TINY)

    rows = table.to_dict("records")
    assert len(rows) == 6 and {r["status"] for r in rows} <= {"ok", "skipped"}
    for row in rows:
        if row["path"] in done_before:
            assert row["status"] == "skipped" and row["run_dir"] == done_before[row["path"]]["run_dir"]
        else:
            assert row["status"] == "ok"
    assert {d: Path(d, RUN_FILE).stat().st_mtime_ns for d in times_before} == times_before
    assert len(complete_runs(out)) == 6  # one complete run folder per video: nothing was done twice
    assert pd.read_parquet(out / "results.parquet")["path"].tolist() == [r["path"] for r in rows]


def test_second_batch_on_the_same_folder_refuses(tmp_path, bikes):
    out = tmp_path / "out"
    with ResultsTable(out):  # a batch in this process holds the folder
        done = cli(bikes, "-o", out, "--caption-only", "--quiet", "--models", "tiny", cwd=tmp_path)
    assert done.returncode == 1
    assert "Another batch is already writing to" in done.stderr and "another output folder (-o)" in done.stderr
    assert f"process {os.getpid()}" in done.stderr and "Traceback" not in done.stderr
    assert not (out / "results.jsonl").exists()  # the refused batch wrote nothing
    assert not (out / LOCK_FILE).exists()  # released by its owner


@pytest.fixture(scope="module")
def local_ray():
    from vid2vid_widgets.batch._ray import import_ray, start_ray
    from vid2vid_widgets.errors import MissingDependencyError

    try:
        import_ray()
    except MissingDependencyError as exc:  # fail, not skip: CI must run the Ray engine (scripts/setup.sh installs it)
        pytest.fail(str(exc))

    started = start_ray(num_cpus=2)
    yield
    if started:
        import_ray().shutdown()


@pytest.mark.slow
def test_local_and_ray_engines_agree(tmp_path, sample_videos, local_ray):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(sample_videos / name, folder / name)
    (folder / "junk.mp4").write_text("junk")

    local = run_batch(folder, tmp_path / "local", seed=7, **TINY)
    ray = run_batch(folder, tmp_path / "ray", engine="ray", concurrency=2, seed=7, **TINY)

    assert ray["status"].tolist() == local["status"].tolist() == ["ok", "ok", "error"]
    assert ray["engine"].tolist() == ["ray"] * 3
    for column in ("name", "caption", "per_frame_captions", "prompt", "seed", "input_digest", "message"):
        assert ray[column].tolist() == local[column].tolist(), column
    for a, b in zip(local["output_path"][:2], ray["output_path"][:2]):
        assert np.array_equal(decoded(a), decoded(b))
        assert Path(b).is_relative_to(tmp_path / "ray" / "runs")
