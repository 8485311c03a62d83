"""RunStore: one folder per run, nothing overwritten, run.json last, half runs ignored, safe upload names."""

import json
import os

import pytest

from vid2vid_widgets.errors import OutputNotWritableError
from vid2vid_widgets.runs import RUN_FILE, RunStore, safe_filename, slugify


def _complete_run(store, prompt="a red fox", seed=1):
    run_dir = store.new_run_dir(prompt)
    (run_dir / "output.mp4").write_bytes(b"fake")
    return store.save_run(run_dir, {"settings": {"prompt": prompt, "seed": seed}})


def test_two_runs_with_the_same_prompt_in_the_same_second_get_two_folders(tmp_path):
    store = RunStore(tmp_path)
    first, second = store.new_run_dir("a red fox"), store.new_run_dir("a red fox")
    assert first != second and first.is_dir() and second.is_dir()
    assert "a-red-fox" in first.name


def test_run_json_holds_the_record_and_versions(tmp_path):
    record = _complete_run(RunStore(tmp_path), seed=42)
    data = json.loads((record.run_dir / RUN_FILE).read_text())
    assert data["settings"]["seed"] == 42 and record.seed == 42
    assert "torch" in data["versions"] and "python" in data["versions"]
    assert not [p for p in record.run_dir.iterdir() if p.name.endswith(".tmp")]


def test_history_lists_complete_runs_newest_first_and_ignores_half_written_ones(tmp_path):
    store = RunStore(tmp_path)
    older = _complete_run(store, "first")
    newer = _complete_run(store, "second")
    half = store.new_run_dir("killed midway")  # output written, run.json never: a killed process
    (half / "output.mp4").write_bytes(b"partial")
    (store.runs_dir / "garbage").mkdir()
    (store.runs_dir / "garbage" / RUN_FILE).write_text("{not json")
    names = [r.run_dir.name for r in store.history()]
    assert names[:2] in ([newer.run_dir.name, older.run_dir.name], [older.run_dir.name, newer.run_dir.name])
    assert len(names) == 2 and half.name not in names


def test_discard_removes_only_incomplete_runs(tmp_path):
    store = RunStore(tmp_path)
    done = _complete_run(store)
    store.discard(done.run_dir)
    assert done.run_dir.exists()
    half = store.new_run_dir("x")
    store.discard(half)
    assert not half.exists()


@pytest.mark.parametrize("name,expected", [
    ("../../etc/passwd", "passwd"),
    ("my holiday video.mp4", "my holiday video.mp4"),
    ("Überraschung 日本.mov", "Überraschung 日本.mov"),
    ("..\\..\\win.mp4", "win.mp4"),
    ("a\x00b\x07.mp4", "ab.mp4"),
    ("...", "upload"),
    ("", "upload"),
])
def test_upload_names_never_escape_the_uploads_folder(name, expected):
    assert safe_filename(name) == expected


def test_uploads_with_the_same_name_never_overwrite(tmp_path):
    store = RunStore(tmp_path)
    a = store.save_upload("../clip.mp4", b"one")
    b = store.save_upload("clip.mp4", b"two")
    assert a.parent == b.parent == tmp_path / "uploads"
    assert a != b and a.read_bytes() == b"one" and b.read_bytes() == b"two"


def test_an_output_folder_that_cannot_be_created_gives_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputNotWritableError, match="Nothing was saved"):
        RunStore(blocker / "runs").new_run_dir("x")


def test_disk_full_while_writing_run_json_leaves_no_run_json(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    run_dir = store.new_run_dir("x")

    def full(*args, **kwargs):
        raise OSError(28, os.strerror(28))  # ENOSPC

    monkeypatch.setattr("vid2vid_widgets.runs.os.replace", full)
    with pytest.raises(OutputNotWritableError, match="space|disk"):
        store.save_run(run_dir, {"settings": {"prompt": "x"}})
    assert not (run_dir / RUN_FILE).exists()
    assert store.history() == []


def test_slugify_is_short_and_safe():
    assert slugify("A dog, running!") == "a-dog-running"
    assert slugify("日本") == "video"
    assert len(slugify("word " * 50)) <= 40
