"""Environment facts, each in one cached helper that tests can replace.

Version checks and "where are we running" questions live here and nowhere else.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Tuple


@functools.lru_cache(maxsize=None)
def in_colab() -> bool:
    """True inside Google Colab, where widget updates from background threads do not render."""
    if os.environ.get("VID2VID_FORCE_COLAB") == "1":
        return True
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


@functools.lru_cache(maxsize=None)
def ipywidgets_major() -> int:
    import ipywidgets

    return int(ipywidgets.__version__.split(".")[0])


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


CPU_WARNING = (
    "No CUDA GPU found: running on the CPU. The real models take minutes per video here "
    "(about 1 minute per denoising step at 16 frames of 256x256 on 2 cores). For a quick try, "
    "use the tiny random models (models='tiny' / --models tiny) or fewer steps and frames; "
    "on Colab choose Runtime > Change runtime type > T4 GPU."
)


def resolve_device(device: str = "auto", dtype: str = "auto", *, warn: bool = True) -> Tuple[str, str]:
    """Pick ("cuda", "float16") when a GPU is present, else ("cpu", "float32") with a warning.

    fp16 on a CPU is slow or unsupported for many kernels, so "auto" means fp32 there.
    """
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
        if device == "cpu" and warn:
            warnings.warn(CPU_WARNING, stacklevel=3)
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    return device, dtype


def torch_dtype(name: str):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


def free_cuda_cache() -> None:
    try:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing memory must never itself fail a run
        pass
