"""Both notebooks (the demo and the teaching one) run from top to bottom with the tiny models, as CI and
Binder run them, and are stored without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK = NOTEBOOKS / "vid2vid_demo.ipynb"
TEACHING = NOTEBOOKS / "how_it_works.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.mark.parametrize("path", [NOTEBOOK, TEACHING], ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"  # JupyterLab would otherwise ask for a kernel
    first = nb.cells[0].source
    assert f"https://colab.research.google.com/github/vid2vid-widgets/vid2vid-widgets/blob/main/notebooks/{path.name}" in first
    assert f"urlpath=lab/tree/notebooks/{path.name}" in first  # Binder opens it


def execute(path: Path, tmp_path: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run a notebook top to bottom with the tiny models in ``tmp_path``; fail on the first error."""
    from nbclient import NotebookClient

    monkeypatch.setenv("VID2VID_MODELS", "tiny")
    # Tiny models on a shared 2-core machine run about 10x faster on one thread.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first error
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    return nb


@pytest.mark.slow
def test_notebook_runs_with_the_tiny_models(tmp_path, monkeypatch):
    nb = execute(NOTEBOOK, tmp_path, monkeypatch)
    everything = "".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "already installed" in everything  # the install cell did nothing
    assert 'Models: tiny random models (MODELS = "tiny")' in everything
    panel_cell = next(c for c in nb.cells if "Vid2VidPanel(models=MODELS" in c.source)
    assert any(WIDGET_VIEW in o.get("data", {}) for o in panel_cell.outputs)
    strip = next(c for c in nb.cells if "sample_frames(" in c.source)
    assert any("image/png" in o.get("data", {}) for o in strip.outputs)
    assert "Whole video:" in everything
    assert "Different seeds give different videos: True" in everything
    assert "Same seed, same words, same video: True" in everything
    assert "The negative prompt changed the video: True" in everything
    strengths = next(c for c in nb.cells if "strength=s" in c.source)
    assert any(WIDGET_VIEW in o.get("data", {}) for o in strengths.outputs)  # the three videos side by side
    assert any("image/png" in o.get("data", {}) for o in strengths.outputs)
    runs = [json.loads((d / "run.json").read_text()) for d in (tmp_path / "vid2vid-runs" / "runs").iterdir()]
    assert len(runs) == 7  # 2 seeds + 2 negative prompt runs + 3 strengths
    assert sorted(r["settings"]["strength"] for r in runs) == [0.3, 0.6, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert all(r["input"]["name"] == "bikes.mp4" for r in runs if r["settings"]["strength"] < 1)
    batch = _text(next(c for c in nb.cells if "run_batch(" in c.source))
    assert "notes.txt" in batch and "error" in batch and batch.count(" ok ") == 2  # 2 videos captioned, junk a row


@pytest.mark.slow
def test_teaching_notebook_runs_with_the_tiny_models_and_shows_pictures(tmp_path, monkeypatch):
    nb = execute(TEACHING, tmp_path, monkeypatch)
    sections = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    questions = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("**Try this:**")]
    assert len(sections) == 10 and len(questions) == 9  # set-up + 9 sections, each ending with one question

    def outputs_of(marker: str) -> list:
        cell = next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)
        return [o for o in cell.outputs if o.get("output_type") in ("display_data", "execute_result")]

    # Pictures and plots rather than printouts: every section draws something.
    for marker in ("sample_frames(", "caption_similarity(per_frame)", "vae.encode(", "on_preview=guesses.append",
                   "guidance_scale=g", "num_steps=s)", "strength=s", "pipe.variations("):
        assert any("image/png" in o.get("data", {}) for o in outputs_of(marker)), marker
    tokens = outputs_of("convert_ids_to_tokens")
    assert any("cut off past 77" in o["data"].get("text/html", "") for o in tokens)
    everything = "".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "longer than the text encoder's 77 tokens" in everything
    assert "made again, same frames: True" in everything
