"""Frames to a target size without distortion: centre-crop to the target's aspect ratio, then resize.

Video-to-video needs the input at exactly the output size. Stretching (what peers do) squashes a
portrait phone clip into a square; padding wastes the model's pixels on bars it then animates.
A centre crop keeps the subject's proportions and fills every pixel, at the cost of the edges.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def crop_box(width: int, height: int, target_width: int, target_height: int) -> Tuple[int, int, int, int]:
    """The centred (left, top, right, bottom) box of a width x height frame with the target's aspect ratio."""
    if width * target_height > height * target_width:  # wider than the target: trim the sides
        kept = max(1, round(height * target_width / target_height))
        left = (width - kept) // 2
        return left, 0, left + kept, height
    kept = max(1, round(width * target_height / target_width))  # taller: trim top and bottom
    top = (height - kept) // 2
    return 0, top, width, top + kept


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """RGB uint8 frames (T, H, W, 3) -> (T, height, width, 3): centre crop to the aspect ratio, then resize.

    Lanczos resampling (anti-aliased when shrinking). Frames already of that size come back unchanged.
    """
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
    if frames.shape[1:3] == (height, width):
        return frames
    box = crop_box(frames.shape[2], frames.shape[1], width, height)
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        # Crop first: resize(box=...) would let the filter reach past the box and blend in the edges.
        out[i] = np.asarray(Image.fromarray(frame).crop(box).resize((width, height), Image.Resampling.LANCZOS))
    return out


__all__ = ["crop_box", "fit_frames"]
