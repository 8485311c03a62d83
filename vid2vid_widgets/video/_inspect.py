"""``inspect_mp4``: what a written file really contains, found by decoding it."""

from __future__ import annotations

import av

from ._reading import PathLike, _decode_packets, _reading, _rotation_cw, _top_level_boxes, _video_stream


def inspect_mp4(path: PathLike) -> dict:
    """What a written file really contains, found by decoding it (not by trusting its header).

    Keys: codec, profile, pix_fmt, width, height (as stored), frames (decoded count), fps,
    duration, rotation, has_audio, container, boxes (top-level MP4 boxes in order), and
    moov_before_mdat (True when a browser can start playing before the download finishes).
    """
    with _reading(path, "inspected", hint="") as (p, container):
        stream = _video_stream(container, p)
        counter = [0]
        first = None
        for frame in _decode_packets(container, stream, counter):
            if first is None:
                first = frame
        rate = stream.average_rate or stream.guessed_rate
        boxes = _top_level_boxes(p)
        moov = boxes.index("moov") if "moov" in boxes else None
        mdat = boxes.index("mdat") if "mdat" in boxes else None
        return {
            "codec": stream.codec_context.name,
            "profile": stream.profile,
            "pix_fmt": first.format.name if first is not None else stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": counter[0],
            "fps": float(rate) if rate else 0.0,
            "duration": (container.duration / av.time_base) if container.duration else 0.0,
            "rotation": _rotation_cw(first, stream),
            "has_audio": bool(container.streams.audio),
            "container": container.format.name,
            "boxes": boxes,
            "moov_before_mdat": moov is not None and mdat is not None and moov < mdat,
        }
