"""Text-to-video backends behind one ``Generator`` protocol.

``diffusers`` (default): the diffusers components of ``ali-vilab/text-to-video-ms-1.7b`` driven by
our own denoising loop. ``modelscope``: the original ``damo/text-to-video-synthesis`` checkpoint
through the ``modelscope`` package (``pip install "vid2vid-widgets[modelscope]"``). ``animatediff``:
Stable Diffusion 1.5 plus an AnimateDiff motion adapter, on the same skeleton.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional, Union

from ..errors import InvalidSettingsError
from .base import MAX_SEED, SCHEDULERS, GeneratedFrames, GenerationSettings, Generator

# backend name -> (module, class, tiny-model role); modules import lazily (diffusers, modelscope are heavy)
BACKENDS = {
    "diffusers": ("vid2vid_widgets.generation.diffusers_t2v", "DiffusersTextToVideo", "text-to-video"),
    "modelscope": ("vid2vid_widgets.generation.modelscope_t2v", "ModelScopeTextToVideo", "modelscope"),
    "animatediff": ("vid2vid_widgets.generation.animatediff", "AnimateDiffGenerator", "animatediff"),
}
DEFAULT_BACKEND = "diffusers"


def _backend_entry(backend: str):
    if backend not in BACKENDS:
        raise InvalidSettingsError(f"Unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
    return BACKENDS[backend]


def make_generator(
    backend: Union[str, Generator, None] = None,
    model_id: Optional[str] = None,
    *,
    models: Optional[str] = None,
    device: str = "auto",
    dtype: str = "auto",
    **options: Any,
) -> Generator:
    """Build the generator for ``backend`` (a name, or an object that already is one).

    ``models="tiny"`` swaps in the tiny random model of that backend (tests, offline demos).
    ``options``: more arguments of the backend's class (a catalogue preset's motion adapter...).
    Nothing is loaded here: generators load lazily, through the model registry.
    """
    if backend is not None and not isinstance(backend, str):
        return backend
    module_name, class_name, tiny_role = _backend_entry(backend or DEFAULT_BACKEND)
    if model_id is None and models == "tiny":
        from ..tiny import tiny_model_path

        model_id = tiny_model_path(tiny_role)
    cls = getattr(importlib.import_module(module_name), class_name)
    kwargs = {"device": device, "dtype": dtype, **options}
    if model_id is not None:
        kwargs["model_id"] = model_id
    generator = cls(**kwargs)
    if models == "tiny":
        # Random weights: the published latent->RGB map means nothing for them; fit one to their VAE.
        generator.preview_map = "fitted"
    return generator


__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "GenerationSettings", "GeneratedFrames", "Generator",
    "MAX_SEED", "SCHEDULERS", "make_generator",
]
