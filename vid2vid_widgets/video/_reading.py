"""Opening inputs and reading frames out of them; FFmpeg's errors turned into ours.

Everything that reads a file (probe, sampling, preview, inspection) opens it through ``_reading``,
so "never a bare PyAV traceback" is one rule in one place.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import av.error
import numpy as np

from ..errors import InvalidVideoError

PathLike = Union[str, "os.PathLike[str]"]

# What reading a file that is not what it claims to be raises; everything else is a bug and must
# surface (not become "fall back to decoding in order" or "could not be decoded").
# - av.error.FFmpegError: every av.error.* (InvalidDataError, which is also a ValueError; EOFError,
#   MemoryError and the OSError family, which are also those builtins; ExternalError, ...). It is
#   what the test suite's truncated, moov-less, junk, audio-only, VFR and GIF files raise (always
#   InvalidDataError, from av.open or packet.decode).
# - OSError: the file itself failing under us (stat, reading its MP4 boxes; a disk going away).
# - MemoryError: PyAV raises the builtin one when an allocation fails in demux or decode.
# Not ValueError, IndexError or RuntimeError: PyAV raises those for misuse (wrong arguments, a codec
# already open), not for bad files.
_READ_ERRORS = (av.error.FFmpegError, OSError, MemoryError)

# How many packets may fail to give a frame before we call a stream undecodable. H.264 with
# B-frames needs a few packets before the first frame; a broken stream never gives one.
_MAX_PACKETS_WITHOUT_FRAME = 300

_FIX_INPUT = "Export it again as MP4 (H.264) or choose another file."


def _name(path: PathLike) -> str:
    return os.path.basename(os.fspath(path)) or os.fspath(path)


def _ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's own words, without the file path PyAV appends (the message names the file already)."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    text = str(exc)
    return text.split(": '", 1)[0] if text else type(exc).__name__


def _check_input_file(path: PathLike) -> Path:
    """Fail early, in plain words, on the things FFmpeg would report cryptically."""
    p = Path(os.fspath(path)).expanduser()
    name = _name(p)
    if not p.exists():
        raise InvalidVideoError(f"'{name}' was not found ({p}). Check the path, or upload the file again.")
    if p.is_dir():
        raise InvalidVideoError(f"'{name}' is a folder, not a video file. Choose a video file inside it.")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InvalidVideoError(f"'{name}' cannot be read ({exc.strerror}). Check its permissions.") from exc
    if size == 0:
        raise InvalidVideoError(
            f"'{name}' is empty (0 bytes): the upload or copy did not finish. Upload or copy it again."
        )
    return p


def _open_input(path: Path) -> "av.container.InputContainer":
    try:
        return av.open(str(path), mode="r", metadata_errors="replace")
    except _READ_ERRORS as exc:
        if _looks_like_unfinished_mp4(path):
            raise InvalidVideoError(
                f"'{_name(path)}' is incomplete: it is an MP4 without its index (the moov box), which is "
                f"what an interrupted recording, download or upload leaves. Copy or upload the whole "
                f"file again, or choose another file."
            ) from exc
        reason = _ffmpeg_reason(exc)
        raise InvalidVideoError(f"'{_name(path)}' is not a video FFmpeg can read ({reason}). {_FIX_INPUT}") from exc


@contextmanager
def _reading(path: PathLike, verb: str, hint: str = _FIX_INPUT) -> Iterator[tuple[Path, "av.container.InputContainer"]]:
    """Open an input for reading; any decoder error inside becomes an InvalidVideoError naming the file.

    One place for the "never a bare PyAV traceback" rule that probe, sample_frames and inspect_mp4 share.
    """
    p = _check_input_file(path)
    container = _open_input(p)
    try:
        yield p, container
    except _READ_ERRORS as exc:
        raise InvalidVideoError(f"'{_name(p)}' could not be {verb} ({_ffmpeg_reason(exc)}). {hint}".rstrip()) from exc
    finally:
        container.close()


def _top_level_boxes(path: Path) -> list[str]:
    """Types of the top-level MP4 boxes in file order (ftyp, moov, mdat, ...)."""
    kinds: list[str] = []
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        offset = 0
        while offset + 8 <= end:
            f.seek(offset)
            header = f.read(16)
            size = int.from_bytes(header[:4], "big")
            kinds.append(header[4:8].decode("latin-1"))
            if size == 1:  # 64-bit size follows the type
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:  # box runs to the end of the file
                break
            if size < 8:
                break
            offset += size
    return kinds


def _looks_like_unfinished_mp4(path: Path) -> bool:
    """An MP4/MOV (starts with an ftyp box) that has no moov box: the index was never written."""
    try:
        boxes = _top_level_boxes(path)
    except OSError:
        return False
    return bool(boxes) and boxes[0] == "ftyp" and "moov" not in boxes


def _video_stream(container: "av.container.InputContainer", path: Path) -> "av.VideoStream":
    """The main video stream; cover art in audio files (attached pictures) does not count."""
    candidates = [
        s
        for s in container.streams.video
        if not (s.disposition & av.stream.Disposition.attached_pic) and s.codec_context is not None
    ]
    if not candidates:
        has_audio = bool(container.streams.audio)
        what = "only sound" if has_audio else "no video track"
        raise InvalidVideoError(f"'{_name(path)}' has {what}, no pictures to caption. Choose a video file.")
    return candidates[0]


def _rotation_cw(frame: Optional["av.VideoFrame"], stream: "av.VideoStream") -> int:
    """Clockwise degrees (0/90/180/270) a player turns this video to show it upright.

    FFmpeg attaches the container's display matrix to every decoded frame; PyAV's
    ``frame.rotation`` reads it counter-clockwise, so the clockwise turn is its negation. Old
    files may carry only the legacy ``rotate`` tag (clockwise already).
    """
    # No try: frame.rotation only reads the frame's side data, and does not raise.
    ccw = int(round(frame.rotation)) if frame is not None else 0
    if ccw:
        cw = -ccw
    else:
        try:
            cw = int(float(stream.metadata.get("rotate", 0)))
        except (TypeError, ValueError):
            cw = 0
    # Snap to the nearest quarter turn: display matrices store sines and cosines in fixed point.
    return int(round(cw / 90.0)) * 90 % 360


def _seconds(value: Optional[int], time_base: Optional[Fraction]) -> Optional[float]:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _frame_time(frame: "av.VideoFrame", stream: "av.VideoStream") -> Optional[float]:
    pts = frame.pts if frame.pts is not None else getattr(frame, "dts", None)
    if pts is None:
        return None
    tb = frame.time_base or stream.time_base
    return float(pts * tb) if tb is not None else None


def _start_time(stream: "av.VideoStream", container: "av.container.InputContainer") -> float:
    start = _seconds(stream.start_time, stream.time_base)
    if start is None and container.start_time is not None:
        start = container.start_time / av.time_base
    return start or 0.0


def _decode_packets(
    container: "av.container.InputContainer", stream: "av.VideoStream", counter: list[int]
) -> Iterator["av.VideoFrame"]:
    """Frames of one stream from the current position; corrupt packets are skipped, not fatal.

    A damaged packet in the middle of a long video should cost one frame, not the whole job.
    ``counter[0]`` counts decoded frames (for the seek-versus-decode checks).
    """
    failures = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except _READ_ERRORS:
            failures += 1
            if failures > _MAX_PACKETS_WITHOUT_FRAME:
                return
            continue
        for frame in frames:
            failures = 0
            counter[0] += 1
            yield frame


def _to_rgb(frame: "av.VideoFrame", rotation: int, stored_size: tuple[int, int]) -> np.ndarray:
    """Upright RGB uint8 (H, W, 3): swscale scales and converts in one pass, numpy turns it.

    ``stored_size`` is the (width, height) to scale to, in the orientation the file stores
    (before the turn): the samplers and the preview each choose their own.
    """
    if stored_size != (frame.width, frame.height) or frame.format.name != "rgb24":
        # AREA averages the pixels it drops: no aliasing when a 4K frame becomes 384 px.
        frame = frame.reformat(width=stored_size[0], height=stored_size[1], format="rgb24", interpolation="AREA")
    rgb = frame.to_ndarray()
    if rotation:
        # np.rot90 turns counter-clockwise for positive k; players turn `rotation` clockwise.
        rgb = np.ascontiguousarray(np.rot90(rgb, k=-(rotation // 90)))
    return rgb
