"""AnimateDiff on the generator skeleton: Stable Diffusion 1.5 weights plus a motion adapter.

Our own loop rather than diffusers' ``AnimateDiffPipeline``: the skeleton then gives video-to-video
(SDEdit), per-step progress and cancel, the out-of-memory guard and VAE slicing exactly as for the
other backends. AnimateDiff differs from the ModelScope family in three places only, so this class
is ``DiffusersTextToVideo`` with:

* loading: ``UNet2DConditionModel`` + ``MotionAdapter`` -> ``UNetMotionModel`` (built on the meta
  device and given the loaded tensors, so the 1.3 B-parameter motion UNet never exists twice in RAM);
* the prompt embedding repeated once per frame (the motion UNet runs the 2D layers frame by frame);
* the preset's scheduler recipe (linear betas), passed as ``scheduler_config`` overrides.

Its latents are (1, 4, T, h, w) like ours and its VAE decodes frame by frame, so decoding,
encoding and SDEdit are the parent's. ``tests/test_animatediff.py`` checks parity with
``AnimateDiffPipeline`` on the same tiny components.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional

from ..errors import ModelLoadError
from ..models import ModelKey, is_local_folder, model_source
from .diffusers_t2v import DiffusersTextToVideo, TextToVideoComponents, WeightsLoader, _load_components

DEFAULT_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
ROLE = "animatediff"


class AnimateDiffGenerator(DiffusersTextToVideo):
    """Text-to-video (and video-to-video) with a Stable Diffusion 1.5 checkpoint and an AnimateDiff motion adapter.

    ``model_id``: the SD 1.5 checkpoint (hub id or folder with unet/, vae/, text_encoder/, tokenizer/,
    scheduler/). ``motion_adapter``: a ``MotionAdapter`` hub id or folder; with ``adapter_file`` the
    adapter is that one safetensors file in it (AnimateDiff-Lightning ships its adapters so), in the
    architecture of ``config.json`` beside it or, without one, ``MotionAdapter()``'s (AnimateDiff v2,
    which Lightning distils). Other arguments as ``DiffusersTextToVideo``.
    """

    backend = "animatediff"
    role = ROLE

    def __init__(
        self,
        model_id: str = DEFAULT_BASE_MODEL,
        *,
        motion_adapter: str = DEFAULT_MOTION_ADAPTER,
        adapter_file: Optional[str] = None,
        adapter_revision: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model_id, **kwargs)
        self.motion_adapter = str(motion_adapter)
        self.adapter_file = adapter_file
        self.adapter_revision = adapter_revision

    @property
    def key(self) -> ModelKey:
        # One resident model per (base, adapter) pair: switching presets keeps each loaded.
        adapter = self.motion_adapter + (f"::{self.adapter_file}" if self.adapter_file else "")
        revision = None if self.revision is None and self.adapter_revision is None else \
            f"{self.revision or 'main'}+{self.adapter_revision or 'main'}"
        return ModelKey(self.role, f"{self.model_id}+{adapter}", revision, self._key_device(), self.dtype)

    def _load(self) -> TextToVideoComponents:
        return _load_components(self.model_id, self.revision, self.device, self.dtype, self.variant,
                                self.cpu_offload, self._variant_was_auto, load_unet=self._load_motion_unet)

    def _describe_extra(self) -> Dict[str, Any]:
        extra = super()._describe_extra()
        extra.update(motion_adapter=self.motion_adapter, adapter_file=self.adapter_file,
                     adapter_revision=self.adapter_revision)
        return extra

    def _load_motion_unet(self, weights: WeightsLoader) -> Any:
        """The motion UNet from the 2D UNet and the adapter, sharing their tensors (no second copy)."""
        from accelerate import init_empty_weights
        from diffusers import UNet2DConditionModel, UNetMotionModel

        from .._compat import torch_dtype

        unet2d = weights(UNet2DConditionModel.from_pretrained, "unet", "torch_dtype")
        adapter = self._load_adapter(torch_dtype(self.dtype))
        with init_empty_weights():
            # load_weights=False: only the architecture, on the meta device; the tensors come next.
            unet = UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
        # The motion UNet's parameters are exactly the 2D UNet's plus the adapter's, under the same names.
        state = {**unet2d.state_dict(), **adapter.state_dict()}
        missing, unexpected = unet.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise ModelLoadError(
                f"The motion adapter {self.motion_adapter!r} does not fit the UNet of {self.model_id!r} "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}): use a Stable Diffusion 1.5 "
                "checkpoint with an SD 1.5 motion adapter.")
        del unet2d, adapter, state
        # Buffers made outside the meta context (positional encodings) follow the weights' dtype.
        return unet.to(dtype=torch_dtype(self.dtype))

    def _load_adapter(self, tdtype: Any) -> Any:
        from diffusers import MotionAdapter

        source = model_source(self.motion_adapter)
        if is_local_folder(self.motion_adapter) and not os.path.isdir(source):
            raise FileNotFoundError(f"there is no motion adapter folder {self.motion_adapter!r}.")
        if self.adapter_file is None:
            try:
                return MotionAdapter.from_pretrained(source, revision=self.adapter_revision, torch_dtype=tdtype,
                                                     variant=self.variant)
            except Exception:
                if self.variant is None or not self._variant_was_auto:
                    raise
                return MotionAdapter.from_pretrained(source, revision=self.adapter_revision, torch_dtype=tdtype)
        return _adapter_from_file(source, self.adapter_file, self.adapter_revision, tdtype)

    def _encode_prompt(self, c: TextToVideoComponents, settings: Any, notes: List[str]) -> Any:
        from .._compat import motion_unet_repeats_prompt

        embeddings = super()._encode_prompt(c, settings, notes)
        if motion_unet_repeats_prompt():
            return embeddings  # diffusers < 0.31: the UNet repeats them itself
        # The motion UNet runs its 2D layers on (batch x frames) images: one embedding per frame,
        # [negative x T, positive x T], as AnimateDiffPipeline repeats them.
        return embeddings.repeat_interleave(settings.num_frames, dim=0)


def _adapter_from_file(source: str, filename: str, revision: Optional[str], tdtype: Any) -> Any:
    """A ``MotionAdapter`` whose weights are one safetensors file (built on the meta device, then assigned)."""
    from accelerate import init_empty_weights
    from diffusers import MotionAdapter
    from safetensors.torch import load_file

    config: Mapping[str, Any]
    if os.path.isdir(source):
        path = os.path.join(source, filename)
        config_path = os.path.join(source, "config.json")
        config = MotionAdapter.load_config(source) if os.path.exists(config_path) else {}
    else:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(source, filename, revision=revision)
        config = {}  # the Lightning repo has no config.json: its adapters are MotionAdapter()'s architecture
    with init_empty_weights():
        adapter = MotionAdapter.from_config(config) if config else MotionAdapter()
    adapter.load_state_dict(load_file(path), strict=True, assign=True)
    return adapter.to(dtype=tdtype).eval()


__all__ = ["AnimateDiffGenerator", "DEFAULT_BASE_MODEL", "DEFAULT_MOTION_ADAPTER"]
