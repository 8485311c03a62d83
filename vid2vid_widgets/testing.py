"""Public alias kept for users' scripts and the docs: the tiny random models live in ``vid2vid_widgets.tiny``.

``from vid2vid_widgets.testing import tiny_model_path`` keeps working; new code imports from
``vid2vid_widgets.tiny`` (its modules ``tiny.blip``, ``tiny.text_to_video`` and ``tiny.modelscope``
hold the builders).
"""

from __future__ import annotations

from .tiny import tiny_model_path, tiny_models_root

__all__ = ["tiny_model_path", "tiny_models_root"]
