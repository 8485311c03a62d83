"""``preview``: a small browser-playable copy of any readable input, for the panel's Video widget."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InvalidVideoError
from ._encoding import _Mp4Writer
from ._probe import probe
from ._reading import _FIX_INPUT, PathLike, _decode_packets, _frame_time, _reading, _start_time, _to_rgb, _video_stream

# Browsers and the panel do not need more than this; higher rates only make previews bigger.
PREVIEW_MAX_FPS = 30.0

# A preview is sent whole through the widget channel (Jupyter drops messages over 10 MiB), so its size
# must not follow the input's: a 100 MB upload of grainy or noisy footage at crf 26 alone still gave
# a 37 MB preview. Capping the rate (VBV on top of crf) leaves ordinary footage as it was and keeps a
# minute of preview at about 5 MB.
PREVIEW_MAX_KBPS = 600


def preview(path: PathLike, max_side: int = 480, max_seconds: Optional[float] = None, *, out_path: PathLike) -> Path:
    """A small H.264 copy of any readable video at ``out_path``, for showing in a browser.

    The panel's Video widget sends its whole value to the browser, and browsers cannot play MOV,
    MKV, AVI, HEVC, 10-bit or GIF inputs reliably: so the input is decoded once, turned upright,
    downscaled (longest side <= ``max_side``, even sides), capped at 30 fps and at
    ``PREVIEW_MAX_KBPS`` (so its size follows its length, not the input's bitrate) and re-encoded fast.
    Sound is dropped (the panel only shows pictures). ``max_seconds`` keeps only the beginning.

    ``out_path`` is required and always written: caching previews is the caller's business
    (``Vid2VidPipeline.preview`` keeps one per input file in the output folder).
    """
    if max_side < 2:
        raise ValueError(f"max_side must be at least 2, got {max_side}")
    info = probe(path)
    dest = Path(os.fspath(out_path)).expanduser()

    out_fps = min(info.fps, PREVIEW_MAX_FPS) if info.fps > 0 else PREVIEW_MAX_FPS
    # Output size in the upright orientation, scaled to fit and rounded to even sides.
    scale = min(1.0, max_side / max(info.width, info.height))
    out_w = max(2, int(round(info.width * scale / 2)) * 2)
    out_h = max(2, int(round(info.height * scale / 2)) * 2)
    stored_size = (out_h, out_w) if info.rotation in (90, 270) else (out_w, out_h)

    writer = _Mp4Writer(dest, out_fps, out_w, out_h, preset="veryfast", crf=26, max_kbps=PREVIEW_MAX_KBPS)
    try:
        with _reading(info.path, "decoded") as (src, container):
            stream = _video_stream(container, src)
            stream.thread_type = "AUTO"
            start = _start_time(stream, container)
            slot = 0  # index of the next output frame; frame n shows at n / out_fps
            previous: Optional[np.ndarray] = None
            for i, frame in enumerate(_decode_packets(container, stream, [0])):
                t = _frame_time(frame, stream)
                t = (t - start) if t is not None else i / (info.fps or out_fps)
                if max_seconds is not None and t >= max_seconds:
                    break
                # Hold the previous picture for any slots before this frame (keeps VFR timing), then
                # use this frame for the slot it starts in; frames between slots are dropped (fps cap).
                while previous is not None and slot < math.floor(t * out_fps + 1e-6):
                    writer.write(previous)
                    slot += 1
                if slot <= math.floor(t * out_fps + 1e-6) or previous is None:
                    rgb = _to_rgb(frame, info.rotation, stored_size)
                    if previous is None and slot < math.floor(t * out_fps + 1e-6):
                        slot = math.floor(t * out_fps + 1e-6)  # video starts late: no black lead-in
                    previous = rgb
            if previous is None:
                raise InvalidVideoError(f"'{src.name}' gave no frames when decoded. {_FIX_INPUT}")
            writer.write(previous)
        return writer.close()
    except BaseException:
        writer.abort()  # no half-written preview left behind, whatever went wrong
        raise
