"""Tiny random models for tests, CI and offline demos (``models="tiny"``). Never used by default.

No weights can be downloaded in CI, so the real loading and inference code is exercised with tiny
models built from configs, saved to a folder with the same layout as the real checkpoints, and
loaded back through the very same code path as the real model ids. ``models="tiny"`` on the
pipeline and ``--models tiny`` on the command line switch to them.

Their output is noise-like colour: they test the plumbing, not the art.

One module per model, each with a ``build(folder, ...)`` whose size parameters default to the tiny
sizes: ``tiny.blip`` (the captioner), ``tiny.text_to_video`` (the diffusers backend),
``tiny.modelscope`` (the modelscope backend), ``tiny.animatediff`` (the animatediff backend: SD 1.5
plus motion adapters), ``tiny.smolvlm`` (the SmolVLM2 video captioner). Given the published sizes instead, the same builders
write full-size random models in the real layout (``benchmarks/bench_gpu.py`` measures those).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Dict, Optional, Union

# role -> module of this package whose build(folder) writes a loadable model into the folder;
# imported only when that role is built (transformers, diffusers, modelscope are heavy).
_BUILDERS = {
    "captioner": "blip",
    "text-to-video": "text_to_video",
    "modelscope": "modelscope",
    "animatediff": "animatediff",
    "smolvlm": "smolvlm",
}
_MARKER = ".complete"
# Words that real video captions are made of, so a random model's output still reads like words.
CAPTION_WORDS = """
a an the of in on at with and to from by near over under into through
man woman person people child boy girl dog cat horse bird car bike bicycle bus train truck boat
street road field park beach water river lake sea sky tree trees grass snow mountain city building
house room table kitchen window door wall floor stage forest hill bridge
is are riding walking running sitting standing playing flying driving jumping swimming holding
looking eating talking dancing smiling
big small young old red blue green white black yellow brown tall
group couple crowd animal rabbit bunny video image picture scene view front back top side
""".split()
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
        builder = importlib.import_module(f"{__name__}.{_BUILDERS[role]}").build
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


def padded_vocab(vocab: Dict[str, int], size: int, filler: str) -> Dict[str, int]:
    """``vocab`` grown to ``size`` entries with unused ``filler.format(i)`` tokens.

    A model with the real embedding-table size then has a tokenizer that decodes every id it can
    generate, while the tokens that mean something stay the tiny builders' real words.
    """
    vocab = dict(vocab)
    i = 0
    while len(vocab) < size:
        vocab.setdefault(filler.format(i), len(vocab))
        i += 1
    return vocab


__all__ = ["tiny_models_root", "tiny_model_path", "padded_vocab", "CAPTION_WORDS"]
