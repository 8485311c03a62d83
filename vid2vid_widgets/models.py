"""The process-wide registry of loaded models: each model loads once per Python process.

Every captioner, generator, pipeline and panel asks the registry; nothing loads weights elsewhere.
Keys are (role, model id, revision, device, dtype), so a second panel in the same kernel, or a second
run, finds the models already resident and costs only the compute.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, TypeVar

from ._compat import free_cuda_cache

T = TypeVar("T")


@dataclass(frozen=True)
class ModelKey:
    role: str  # "captioner", "text-to-video", "modelscope", ...
    model_id: str  # hub id or local folder
    revision: Optional[str]
    device: str
    dtype: str


class ModelRegistry:
    """A dict of loaded models with a load counter (for tests and the residency benchmark)."""

    def __init__(self) -> None:
        self._models: Dict[ModelKey, Any] = {}
        self._lock = threading.RLock()
        self.load_counts: Counter = Counter()

    def get(self, key: ModelKey, loader: Callable[[], T]) -> T:
        """Return the resident model for ``key``, calling ``loader()`` only the first time."""
        with self._lock:  # one loader at a time: two panels must not load the same weights twice
            if key not in self._models:
                self._models[key] = loader()
                self.load_counts[key] += 1
            return self._models[key]

    def is_loaded(self, key: ModelKey) -> bool:
        return key in self._models

    @property
    def total_loads(self) -> int:
        return sum(self.load_counts.values())

    def unload(self, role: Optional[str] = None) -> int:
        """Drop resident models (all, or one role) and free the CUDA cache. Returns how many."""
        with self._lock:
            doomed = [k for k in self._models if role is None or k.role == role]
            for key in doomed:
                del self._models[key]
        free_cuda_cache()
        return len(doomed)


REGISTRY = ModelRegistry()


def is_local_folder(model_id: str) -> bool:
    """The one rule for "is this model id a local folder?": an existing folder, or a path by its shape.

    Hub ids are "name" or "owner/name"; an absolute path, one starting with "." or "~", one with two
    or more slashes or a backslash is meant as a folder even when it does not exist (then the
    loaders say "no such folder" instead of asking the hub for a nonsense id).
    """
    return (os.path.isdir(os.path.expanduser(model_id)) or os.path.isabs(model_id)
            or model_id.startswith((".", "~")) or model_id.count("/") > 1 or "\\" in model_id)


def model_source(model_id: str) -> str:
    """What to hand ``from_pretrained``: the expanded folder for local ids, the hub id otherwise."""
    return os.path.expanduser(model_id) if is_local_folder(model_id) else model_id


def unload(role: Optional[str] = None) -> int:
    """Free resident models (all, or those of one role) and the CUDA cache."""
    return REGISTRY.unload(role)


__all__ = ["ModelKey", "ModelRegistry", "REGISTRY", "unload", "is_local_folder", "model_source"]
