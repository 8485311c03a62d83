"""Tiny random models for tests, CI and offline demos. Never used by default.

No weights can be downloaded in CI, so the real loading and inference code is exercised with tiny
models built from configs, saved to a folder with the same layout as the real checkpoints, and
loaded back through the very same code path as the real model ids. ``models="tiny"`` on the
pipeline and ``--models tiny`` on the command line switch to them.

Their output is noise-like colour: they test the plumbing, not the art.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Optional, Union

# role -> "module:function"; each builder takes a folder and writes a loadable model into it.
_BUILDERS = {
    "captioner": "vid2vid_widgets._tiny_blip:build_tiny_blip",
    "text-to-video": "vid2vid_widgets._tiny_t2v:build_tiny_text_to_video",
    "modelscope": "vid2vid_widgets._tiny_modelscope:build_tiny_modelscope",
}
_MARKER = ".complete"
_lock = threading.Lock()


def tiny_models_root() -> Path:
    """Where tiny models are cached: ``$VID2VID_TINY_MODELS`` or ``~/.cache/vid2vid-widgets/tiny-models``."""
    env = os.environ.get("VID2VID_TINY_MODELS")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "vid2vid-widgets" / "tiny-models"


def tiny_model_path(role: str, root: Optional[Union[str, Path]] = None) -> str:
    """Folder of the tiny model for ``role``, building it the first time.

    Built in a temporary sibling folder and renamed into place, so a killed build never leaves a
    half-written model that a later run would try to load.
    """
    if role not in _BUILDERS:
        raise ValueError(f"No tiny model for role {role!r}; choose one of {sorted(_BUILDERS)}.")
    base = Path(root) if root is not None else tiny_models_root()
    target = base / role
    if (target / _MARKER).exists():
        return str(target)
    with _lock:
        if (target / _MARKER).exists():
            return str(target)
        base.mkdir(parents=True, exist_ok=True)
        module_name, func_name = _BUILDERS[role].split(":")
        builder = getattr(importlib.import_module(module_name), func_name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{role}-", dir=base))
        try:
            builder(tmp)
            (tmp / _MARKER).write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def build_tiny_blip(folder: Union[str, Path]) -> str:
    """Write a tiny random BLIP captioner (model, processor, tokenizer) into ``folder``."""
    from ._tiny_blip import build_tiny_blip as build

    return build(folder)


def build_tiny_text_to_video(folder: Union[str, Path]) -> str:
    """Write tiny random diffusers text-to-video components (unet, vae, text encoder, tokenizer, scheduler)."""
    from ._tiny_t2v import build_tiny_text_to_video as build

    return build(folder)


def build_tiny_modelscope(folder: Union[str, Path]) -> str:
    """Write a tiny random model folder in the ModelScope ``damo/text-to-video-synthesis`` layout."""
    from ._tiny_modelscope import build_tiny_modelscope as build

    return build(folder)


__all__ = ["tiny_models_root", "tiny_model_path", "build_tiny_blip", "build_tiny_text_to_video", "build_tiny_modelscope"]
