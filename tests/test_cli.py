"""The vid2vid command, run as a real subprocess through its console script."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vid2vid_widgets import video

SMALL = ["--frames", "4", "--steps", "2", "--height", "32", "--width", "32", "--models", "tiny", "--quiet"]


def vid2vid(*args, cwd):
    exe = shutil.which("vid2vid", path=str(Path(sys.executable).parent)) or shutil.which("vid2vid")
    command = [exe] if exe else [sys.executable, "-m", "vid2vid_widgets"]
    return subprocess.run([*command, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)


@pytest.mark.slow
def test_run_on_a_real_video_writes_a_playable_h264_file(tmp_path, bikes):
    done = vid2vid("run", bikes, "-o", "new.mp4", "--seed", "3", "--output-dir", "runs", *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    facts = video.inspect_mp4(tmp_path / "new.mp4")
    assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p" and facts["frames"] == 4
    assert "seed: 3" in done.stdout
    history = vid2vid("history", "--output-dir", "runs", cwd=tmp_path)
    assert history.returncode == 0 and "seed 3" in history.stdout


@pytest.mark.slow
def test_caption_json_and_generate(tmp_path, bikes):
    done = vid2vid("caption", bikes, "--json", "--caption-frames", "2", "--models", "tiny", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    caption = json.loads(done.stdout)
    assert len(caption["per_frame"]) == 2 and caption["text"]
    made = vid2vid("generate", "a red fox in snow", "-o", "fox.mp4", *SMALL, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert video.inspect_mp4(tmp_path / "fox.mp4")["codec"] == "h264"
    # -o never overwrites: a second run with the same name fails and keeps the first file
    before = (tmp_path / "fox.mp4").read_bytes()
    again = vid2vid("generate", "a red fox in snow", "-o", "fox.mp4", *SMALL, cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert (tmp_path / "fox.mp4").read_bytes() == before


def test_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    done = vid2vid("caption", bad, "--models", "tiny", "--quiet", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stderr.startswith("vid2vid: error:")
    assert "notes.mp4" in done.stderr
    empty = vid2vid("generate", "   ", *SMALL, cwd=tmp_path)
    assert empty.returncode == 1 and "empty" in empty.stderr and "Traceback" not in empty.stderr


@pytest.mark.slow
def test_previews_are_saved_in_the_run_folder(tmp_path):
    done = vid2vid("generate", "a red car", "--previews", "--preview-every", "1", "--seed", "4", "--output-dir", "runs",
                   *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_json,) = (tmp_path / "runs" / "runs").glob("*/run.json")
    listed = json.loads(run_json.read_text())["previews"]
    assert [p["step"] for p in listed] == [1, 2]
    assert all((run_json.parent / p["file"]).read_bytes().startswith(b"\x89PNG") for p in listed)
    assert f"previews: 2 in {Path('runs', 'runs', run_json.parent.name, 'previews')}" in done.stdout
