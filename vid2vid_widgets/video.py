"""Every byte of video this package reads or writes goes through here (PyAV, i.e. FFmpeg).

Why one module: decoding is where user files break things (phones' rotation flags, VFR, HEVC,
files cut short by a failed upload) and encoding is where browsers refuse output (mp4v, yuv444p,
odd sizes, moov at the end). Keeping both in one place means one set of rules, one set of tests,
and one place that turns FFmpeg's errors into messages a person can act on.

Public functions:

- ``probe(path)``: what is this file (size as displayed, fps, frames, duration, rotation...)?
- ``sample_frames(path, k)``: k RGB frames spread over the whole video, each reached by seeking.
- ``encode_mp4(frames, fps, path)``: H.264 High, yuv420p, +faststart, even sides, written atomically.
- ``preview(path)``: a small browser-playable copy of any input, for the panel's Video widget.
- ``inspect_mp4(path)``: what a written file really contains (for tests and sanity checks).

No bare ``av`` exception leaves this module: unreadable input raises ``InvalidVideoError``,
unwritable output raises ``OutputNotWritableError``, anything else FFmpeg refuses raises
``Vid2VidError``; each message names the file and says what to do.
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence, Union, overload

import av
import av.error
import numpy as np

from .errors import InvalidVideoError, OutputNotWritableError, Vid2VidError

PathLike = Union[str, "os.PathLike[str]"]
FramesLike = Union[np.ndarray, Sequence[np.ndarray]]

# What FFmpeg/PyAV raise when a file is not what it claims to be. FFmpegError covers every av.error.*;
# some of them (av.error.ExternalError, InvalidDataError...) are not OSError subclasses.
_READ_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError, RuntimeError, MemoryError)

# errno values that mean "this place cannot take the file", as opposed to an encoder failure.
_WRITE_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.ENOENT,
    errno.EISDIR,
    errno.EFBIG,
    errno.EEXIST,  # mkdir of the folder found a file of that name
}

# Above this size probe() estimates the frame count of formats without one (mkv, webm) instead of
# counting packets: counting reads the whole file, which is what probing must not do.
_COUNT_PACKETS_MAX_BYTES = 256 * 1024 * 1024

# How many packets may fail to give a frame before we call a stream undecodable. H.264 with
# B-frames needs a few packets before the first frame; a broken stream never gives one.
_MAX_PACKETS_WITHOUT_FRAME = 300

# Browsers and the panel do not need more than this; higher rates only make previews bigger.
PREVIEW_MAX_FPS = 30.0

# A preview is sent whole through the widget channel (Jupyter drops messages over 10 MiB), so its size
# must not follow the input's: a 100 MB upload of grainy or noisy footage at crf 26 alone still gave
# a 37 MB preview. Capping the rate (VBV on top of crf) leaves ordinary footage as it was and keeps a
# minute of preview at about 5 MB.
PREVIEW_MAX_KBPS = 600

_FIX_INPUT = "Export it again as MP4 (H.264) or choose another file."


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as a person would describe it.

    ``width`` and ``height`` are as displayed, i.e. with the rotation applied: a portrait phone video
    stored as 1920x1080 with a 90 degree flag is reported as 1080x1920, because that is the shape of
    the frames ``sample_frames`` returns. ``rotation`` is the clockwise turn a player applies (the
    ``rotate`` tag phones write; iPhone portrait = 90). ``frame_count_is_estimate`` is True when the
    container does not store a count (mkv/webm above a size limit) and it was derived from
    duration x fps. ``container`` is FFmpeg's demuxer name (e.g. ``mov,mp4,m4a,3gp,3g2,mj2``), so a
    file is judged by its content, not its extension.
    """

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    frame_count_is_estimate: bool
    duration: float
    codec: str
    rotation: int
    has_audio: bool
    container: str
    pix_fmt: str

    def summary(self) -> str:
        """A short line for the UI, e.g. ``1280x720, 5.3 s, 25 fps, h264``."""
        if self.duration < 60:
            length = f"{self.duration:.1f} s"
        else:
            minutes, seconds = divmod(int(round(self.duration)), 60)
            hours, minutes = divmod(minutes, 60)
            length = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d} min"
        fps = f"{self.fps:.2f}".rstrip("0").rstrip(".")
        return f"{self.width}x{self.height}, {length}, {fps} fps, {self.codec}"


@dataclass
class SampledFrames:
    """Frames picked from a video for captioning.

    ``frames``: RGB uint8 arrays (H, W, 3), upright (rotation applied), possibly downscaled.
    ``timestamps``: seconds from the start of the video, one per frame, increasing.
    ``decoded_frames``: how many frames FFmpeg decoded to get them; far below the video's frame
    count when seeking worked (tests and the benchmark check it).
    """

    frames: list[np.ndarray]
    timestamps: list[float]
    info: VideoInfo
    decoded_frames: int = field(default=0)

    def __len__(self) -> int:
        return len(self.frames)


# --------------------------------------------------------------------------------------------
# Reading


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
    ccw = 0
    if frame is not None:
        try:
            ccw = int(round(frame.rotation))
        except _READ_ERRORS:
            ccw = 0
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


def _start_time(stream: "av.VideoStream", container: "av.container.InputContainer") -> float:
    start = _seconds(stream.start_time, stream.time_base)
    if start is None and container.start_time is not None:
        start = container.start_time / av.time_base
    return start or 0.0


def _probe_open(path: Path, container: "av.container.InputContainer") -> tuple[VideoInfo, "av.VideoStream"]:
    name = _name(path)
    stream = _video_stream(container, path)
    # Before decoding: a cut MP4 fails in confusing ways once the decoder reaches the missing bytes.
    _check_index_within_file(path, stream)
    # Frame and slice threads: 2-3x faster decoding; must be chosen before the decoder opens.
    stream.thread_type = "AUTO"
    counter = [0]
    first = None
    try:
        for first in _decode_packets(container, stream, counter):
            break
    except _READ_ERRORS:  # demuxing itself failed (not just one packet)
        first = None
    if first is None:
        raise InvalidVideoError(
            f"'{name}' has a video track but no frame of it can be decoded (the file is damaged or "
            f"empty). {_FIX_INPUT}"
        )
    rotation = _rotation_cw(first, stream)
    stored_w, stored_h = first.width, first.height
    width, height = (stored_h, stored_w) if rotation in (90, 270) else (stored_w, stored_h)
    pix_fmt = first.format.name
    codec = stream.codec_context.name

    start = _start_time(stream, container)
    duration = _seconds(stream.duration, stream.time_base)
    if not duration and container.duration:
        duration = container.duration / av.time_base - max(0.0, start - (container.start_time or 0) / av.time_base)

    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0

    frame_count = int(stream.frames or 0)
    estimate = False
    if frame_count <= 0:
        if path.stat().st_size <= _COUNT_PACKETS_MAX_BYTES:
            frame_count = _count_packets(path, stream.index)
        else:
            estimate = True
            frame_count = max(1, int(round((duration or 0) * fps)))

    if frame_count <= 0:
        raise InvalidVideoError(f"'{name}' has a video track with no frames in it. {_FIX_INPUT}")
    if not fps or fps > 1000:  # absent, or a timebase mistaken for a rate
        fps = frame_count / duration if duration else 25.0
    if not duration or duration <= 0:
        duration = frame_count / fps

    _check_not_truncated(path, container, stream, start, duration)

    info = VideoInfo(
        path=str(path),
        width=width,
        height=height,
        fps=fps,
        frame_count=frame_count,
        frame_count_is_estimate=estimate,
        duration=float(duration),
        codec=codec,
        rotation=rotation,
        has_audio=bool(container.streams.audio),
        container=container.format.name,
        pix_fmt=pix_fmt,
    )
    return info, stream


def _count_packets(path: Path, stream_index: int) -> int:
    """Exact frame count for containers that do not store one (mkv, webm, gif): read packets only."""
    try:
        with av.open(str(path), metadata_errors="replace") as c:
            stream = c.streams[stream_index]
            return sum(1 for p in c.demux(stream) if p.size > 0)
    except _READ_ERRORS:
        return 0


def _truncated_message(path: Path) -> str:
    return (
        f"'{_name(path)}' is cut short (truncated): it ends before the video does, as after an "
        f"interrupted download or upload. Copy or upload the whole file again."
    )


def _check_index_within_file(path: Path, stream: "av.VideoStream") -> None:
    """MP4/MOV (and AVI) keep a byte offset for every frame: if the last lies past the end, the file was cut."""
    try:
        entries = stream.index_entries
        n = len(entries)
        if n == 0:
            return
        # The last few entries, not just the last: B-frame reordering can interleave positions.
        last_end = max(entries[i].pos + entries[i].size for i in range(max(0, n - 8), n))
    except _READ_ERRORS:
        return
    if last_end > path.stat().st_size:
        raise InvalidVideoError(_truncated_message(path))


def _check_not_truncated(
    path: Path, container: "av.container.InputContainer", stream: "av.VideoStream", start: float, duration: float
) -> None:
    """Raise if frames stop well before the duration the container announces (mkv, webm, ...).

    Containers without a full index are checked by seeking to 80% of the duration and decoding
    until a frame at or after that point appears. The margin is wide on purpose: a file whose
    sound runs a little longer than its pictures must not be rejected.
    """
    try:
        if len(stream.index_entries) > 0 and container.format.name.startswith("mov"):
            return  # MP4/MOV: every frame is indexed, _check_index_within_file has decided
    except _READ_ERRORS:
        pass
    if duration <= 0 or not _seekable(container):
        return
    frame_duration = 1.0 / float(stream.average_rate) if stream.average_rate else 0.1
    # The last frame starts one frame before the end: that is how a one-frame video still passes.
    target = max(0.0, duration * 0.8 - frame_duration)
    half_frame = frame_duration / 2
    try:
        container.seek(int((start + target) / stream.time_base), stream=stream, backward=True)
        for frame in _decode_packets(container, stream, [0]):
            t = _frame_time(frame, stream)
            if t is None or t - start >= target - half_frame:
                return
    except _READ_ERRORS:
        return  # cannot seek this container: sample_frames falls back to decoding in order
    raise InvalidVideoError(_truncated_message(path))


def _seekable(container: "av.container.InputContainer") -> bool:
    # GIF's demuxer cannot seek by time; FFmpeg would read from the start anyway.
    return container.format.name not in ("gif",)


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


def probe(path: PathLike) -> VideoInfo:
    """Read what a video is, judging by content (not extension), and reject what cannot be used.

    Decodes the first frame (to be sure there is something to caption, and to read the rotation
    FFmpeg attaches to frames) and checks that the file is not cut short.

    Raises ``InvalidVideoError`` naming the file and what to do: missing, empty, not a video,
    audio only, no frames, truncated or undecodable.
    """
    with _reading(path, "read") as (p, container):
        info, _ = _probe_open(p, container)
        return info


def _display_size(stored_w: int, stored_h: int, rotation: int, max_side: Optional[int]) -> tuple[int, int]:
    """Stored-orientation (width, height) to scale to, so the upright result fits in ``max_side``."""
    if not max_side or max(stored_w, stored_h) <= max_side:
        return stored_w, stored_h
    scale = max_side / max(stored_w, stored_h)
    return max(1, int(round(stored_w * scale))), max(1, int(round(stored_h * scale)))


def _to_rgb(frame: "av.VideoFrame", rotation: int, max_side: Optional[int]) -> np.ndarray:
    """Upright RGB uint8 (H, W, 3): swscale scales and converts in one pass, numpy turns it."""
    w, h = _display_size(frame.width, frame.height, rotation, max_side)
    if (w, h) != (frame.width, frame.height) or frame.format.name != "rgb24":
        # AREA averages the pixels it drops: no aliasing when a 4K frame becomes 384 px.
        frame = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA")
    rgb = frame.to_ndarray()
    if rotation:
        # np.rot90 turns counter-clockwise for positive k; players turn `rotation` clockwise.
        rgb = np.ascontiguousarray(np.rot90(rgb, k=-(rotation // 90)))
    return rgb


def _targets(info: VideoInfo, k: int) -> list[float]:
    """Centres of k equal segments: never the black first frame, never past the last one."""
    return [(i + 0.5) * info.duration / k for i in range(k)]


def sample_frames(path: PathLike, k: int = 8, max_side: Optional[int] = None) -> SampledFrames:
    """k upright RGB frames spread evenly over the video, each reached by seeking.

    Frame i is the frame on screen at the centre of the i-th of k equal segments of the duration
    (the last frame whose timestamp is at or before that time). To get there we seek to the
    keyframe before it and decode forward until the next frame would be past the target; when
    the next target lies before the next keyframe we keep decoding instead (a seek would land on
    the same keyframe and decode the same frames again). So the cost grows with k and the GOP
    length, not with the video's length: a 10-minute video costs about what a 10-second one does.

    Short videos: when two targets land on the same frame it is returned once, so you get
    ``min(k, distinct frames)`` frames, never duplicates (duplicates would only make a
    captioner repeat itself). A single-frame video gives one frame.

    Containers that cannot seek (GIF, damaged indexes, missing timestamps) are decoded once
    from the start instead; the result is the same.

    max_side: if set, frames are downscaled (aspect kept) so their longest side is at most this.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    with _reading(path, "decoded") as (p, container):
        info, stream = _probe_open(p, container)
        targets = _targets(info, k)
        start = _start_time(stream, container)
        result = None
        if _seekable(container):
            result = _sample_by_seeking(container, stream, info, targets, start, max_side)
        if result is None:
            result = _sample_sequentially(p, info, targets, max_side)
        return result


def _keyframe_times(stream: "av.VideoStream", start: float) -> Optional[list[float]]:
    """Keyframe times from the container's index (MP4 has all of them), or None if unknown."""
    try:
        entries = stream.index_entries
        n = len(entries)
        if n == 0:
            return None
        tb = stream.time_base
        return sorted(float(e.timestamp * tb) - start for e in entries if e.is_keyframe)
    except _READ_ERRORS:
        return None


class _SeekFailed(Exception):
    """Seeking cannot be trusted for this file; decode it in order instead."""


class _Cursor:
    """Walks decoded frames forward and answers "which frame is on screen at time t?".

    The frame on screen at t is the last one whose timestamp is <= t. ``ahead`` is the first frame
    after the last target asked for: kept, because it may be the answer for the next target.
    """

    def __init__(self, frames: Iterator["av.VideoFrame"], stream: "av.VideoStream", start: float, fps: float) -> None:
        self._frames = frames
        self._stream = stream
        self._start = start
        self._fps = fps or 25.0
        self._index = 0
        self.on_screen: Optional[tuple["av.VideoFrame", float]] = None
        self.ahead: Optional[tuple["av.VideoFrame", float]] = self._next()

    def _next(self) -> Optional[tuple["av.VideoFrame", float]]:
        frame = next(self._frames, None)
        if frame is None:
            return None
        t = _frame_time(frame, self._stream)
        if t is None:
            raise _SeekFailed("frame without timestamp")
        self._index += 1
        return frame, t - self._start

    def frame_at(self, target: float) -> Optional[tuple["av.VideoFrame", float]]:
        while self.ahead is not None and self.ahead[1] <= target + 1e-6:
            self.on_screen = self.ahead
            self.ahead = self._next()
        # Nothing at or before the target (it precedes the first frame): the first frame is shown.
        return self.on_screen if self.on_screen is not None else self.ahead


def _sample_by_seeking(
    container: "av.container.InputContainer",
    stream: "av.VideoStream",
    info: VideoInfo,
    targets: list[float],
    start: float,
    max_side: Optional[int],
) -> Optional[SampledFrames]:
    """Seek-and-decode sampler; returns None when seeking misbehaves so the caller decodes in order."""
    counter = [0]
    keyframes = _keyframe_times(stream, start)
    # Without an index, keep decoding rather than seek when the next target is this close.
    continue_window = 1.0
    # A seek that lands this far after its target means the container's index cannot be trusted.
    overshoot = max(0.5, 2.0 / info.fps) if info.fps else 0.5
    frames: list[np.ndarray] = []
    times: list[float] = []
    cursor: Optional[_Cursor] = None
    try:
        for target in targets:
            must_seek = cursor is None or cursor.ahead is None
            if not must_seek:
                assert cursor is not None and cursor.ahead is not None
                position = cursor.ahead[1]
                if keyframes is not None:
                    i = bisect.bisect_right(keyframes, target + 1e-9)
                    # Seek only if that lands on a keyframe after where we are already.
                    must_seek = i > 0 and keyframes[i - 1] > position + 1e-9
                else:
                    must_seek = target - position > continue_window
            if must_seek:
                container.seek(int((target + start) / stream.time_base), stream=stream, backward=True)
                cursor = _Cursor(_decode_packets(container, stream, counter), stream, start, info.fps)
                if cursor.ahead is None:
                    return None
                if cursor.ahead[1] > target + overshoot and cursor.ahead[1] > 0.01:
                    return None
            assert cursor is not None
            found = cursor.frame_at(target)
            if found is None:
                return None
            frame, t = found
            if times and abs(t - times[-1]) < 1e-6:
                continue  # the same frame as for the previous target: a short video
            frames.append(_to_rgb(frame, info.rotation, max_side))
            times.append(max(0.0, t))
    except (_SeekFailed, *_READ_ERRORS):
        return None
    if not frames:
        return None
    return SampledFrames(frames=frames, timestamps=times, info=info, decoded_frames=counter[0])


def _sample_sequentially(path: Path, info: VideoInfo, targets: list[float], max_side: Optional[int]) -> SampledFrames:
    """Decode once from the start and keep the frame on screen at each target."""
    counter = [0]
    frames: list[np.ndarray] = []
    times: list[float] = []
    with av.open(str(path), metadata_errors="replace") as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        start = _start_time(stream, container)
        index = [0]

        def timed() -> Iterator["av.VideoFrame"]:
            # Frames without timestamps get their place in the sequence as their time.
            for frame in _decode_packets(container, stream, counter):
                if frame.pts is None:
                    frame.pts = int(round((start + index[0] / (info.fps or 25.0)) / stream.time_base))
                index[0] += 1
                yield frame

        cursor = _Cursor(timed(), stream, start, info.fps)
        for target in targets:
            found = cursor.frame_at(target)
            if found is None:
                break
            frame, t = found
            if times and abs(t - times[-1]) < 1e-6:
                continue
            frames.append(_to_rgb(frame, info.rotation, max_side))
            times.append(max(0.0, t))
    if not frames:
        raise InvalidVideoError(f"'{_name(path)}' gave no frames when decoded. {_FIX_INPUT}")
    return SampledFrames(frames=frames, timestamps=times, info=info, decoded_frames=counter[0])


# --------------------------------------------------------------------------------------------
# Writing


def _not_writable(path: Path, exc: OSError) -> OutputNotWritableError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        what = "the disk is full"
        todo = "Free some space or choose another folder."
    elif exc.errno == errno.EROFS:
        what = "that folder is on a read-only disk"
        todo = "Choose a folder you can write to (e.g. your home folder or /content in Colab)."
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        what = "part of that folder path is a file, not a folder"
        todo = "Check the output path."
    elif exc.errno == errno.EISDIR:
        what = "a folder of that name is in the way"
        todo = "Choose another file name."
    elif exc.errno == errno.ENOENT:
        what = "that folder does not exist and cannot be created"
        todo = "Check the output path."
    else:
        what = "permission was denied"
        todo = "Choose a folder you can write to (e.g. your home folder or /content in Colab)."
    return OutputNotWritableError(f"Cannot write '{path.name}' in '{path.parent}': {what}. {todo}")


def _is_write_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS


def _mux(container: "av.container.OutputContainer", packets: list["av.Packet"]) -> None:
    """One place that hands packets to the muxer (a seam tests use to simulate a full disk)."""
    container.mux(packets)


class _Mp4Writer:
    """Streams RGB frames into a browser-safe MP4 that appears at ``path`` only when complete.

    FFmpeg writes to a hidden temporary file in the same folder; ``close`` moves it over ``path``
    with ``os.replace`` (atomic on one filesystem). A crash, a full disk or Ctrl-C leaves the old
    file (or nothing) at ``path``, never half an MP4 that a browser would show as broken.
    """

    def __init__(
        self, path: Path, fps: float, width: int, height: int, *, preset: str, crf: int,
        max_kbps: Optional[int] = None,
    ) -> None:
        self.path = path
        self.width = width + width % 2
        self.height = height + height % 2
        self._tmp: Optional[Path] = None
        self._container = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial.mp4", dir=path.parent)
            os.close(fd)
            self._tmp = Path(tmp)
            # +faststart moves the index (moov) before the data, so a browser can start playing
            # before the whole file has arrived; the muxer needs a real file to rewrite for it.
            self._container = av.open(str(self._tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
            rate = Fraction(fps).limit_denominator(1001)
            options = {"profile": "high", "preset": preset, "crf": str(crf)}
            if max_kbps:
                options.update(maxrate=f"{max_kbps}k", bufsize=f"{2 * max_kbps}k")
            stream = self._container.add_stream("libx264", rate=rate, options=options)
            stream.width, stream.height = self.width, self.height
            # yuv420p is the only pixel format every browser decodes in H.264 (High profile).
            stream.pix_fmt = "yuv420p"
            # Tag BT.709 and convert with it: untagged video is shown with guessed colours.
            cc = stream.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
            self._stream = stream
        except BaseException as exc:
            self.abort()
            if _is_write_error(exc):
                raise _not_writable(path, exc) from exc  # type: ignore[arg-type]
            if isinstance(exc, _READ_ERRORS):
                raise Vid2VidError(f"Could not start writing '{path.name}' ({_ffmpeg_reason(exc)}).") from exc
            raise

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            rgb = _pad_even(rgb, self.width, self.height)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        self._encode(frame)

    def _encode(self, frame: Optional["av.VideoFrame"]) -> None:
        try:
            _mux(self._container, self._stream.encode(frame))
        except BaseException as exc:
            self._fail(exc, "Encoding")

    def close(self) -> Path:
        self._encode(None)
        try:
            assert self._container is not None and self._tmp is not None
            self._container.close()  # faststart rewrites the file here: disk-full shows up now
            self._container = None
            os.replace(self._tmp, self.path)
            self._tmp = None
        except BaseException as exc:
            self._fail(exc, "Finishing")
        return self.path

    def _fail(self, exc: BaseException, what: str) -> None:
        """Drop the half-written file, then raise ``exc`` as one of our errors where it is one."""
        self.abort()
        if _is_write_error(exc):
            raise _not_writable(self.path, exc) from exc  # type: ignore[arg-type]
        if isinstance(exc, _READ_ERRORS):
            raise Vid2VidError(f"{what} '{self.path.name}' failed ({_ffmpeg_reason(exc)}).") from exc
        raise exc

    def abort(self) -> None:
        """Drop everything written so far; never raises (it runs while another error is in flight)."""
        if self._container is not None:
            try:
                self._container.close()
            except BaseException:
                pass
            self._container = None
        if self._tmp is not None:
            try:
                self._tmp.unlink()
            except OSError:
                pass
            self._tmp = None


def _pad_even(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pad by repeating the last row/column: no pixel is lost and no black line appears."""
    pad_h, pad_w = height - rgb.shape[0], width - rgb.shape[1]
    return np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _as_frame_list(frames: FramesLike) -> list[np.ndarray]:
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
        items = list(frames)
    else:
        items = [np.asarray(f) for f in frames]
    if not items:
        raise ValueError("no frames to encode")
    shape = items[0].shape
    for f in items:
        if f.ndim != 3 or f.shape[2] != 3:
            raise ValueError(f"each frame must be (H, W, 3) RGB, got {f.shape}")
        if f.shape != shape:
            raise ValueError(f"all frames must have the same size, got {shape} and {f.shape}")
        if f.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (0-255), got {f.dtype}; convert with (x * 255).round().astype('uint8')")
    return items


@overload
def encode_mp4(frames: FramesLike, fps: float, path: None = None, *, crf: int = ..., preset: str = ...) -> bytes: ...
@overload
def encode_mp4(frames: FramesLike, fps: float, path: PathLike, *, crf: int = ..., preset: str = ...) -> Path: ...


def encode_mp4(
    frames: FramesLike, fps: float, path: Optional[PathLike] = None, *, crf: int = 18, preset: str = "veryfast"
) -> Union[Path, bytes]:
    """Encode RGB frames as an MP4 that plays in every browser; return the path, or bytes if no path.

    H.264 High profile, yuv420p, BT.709, moov before mdat (+faststart). Odd widths or heights are
    padded to even by repeating the last row/column (yuv420p needs even sides; padding keeps
    every generated pixel, cropping would drop one). ``crf`` 18 is visually lossless for
    generated video, which is small anyway.

    The file appears at ``path`` only when it is complete (temp file in the same folder, then
    ``os.replace``). Raises ``OutputNotWritableError`` when the folder cannot be written or the disk
    is full, ``ValueError`` for frames of the wrong shape or dtype.
    """
    items = _as_frame_list(frames)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    height, width = items[0].shape[:2]
    if path is None:
        with tempfile.TemporaryDirectory(prefix="vid2vid-encode-") as tmp:
            out = _encode_to(items, fps, Path(tmp) / "video.mp4", crf=crf, preset=preset, size=(width, height))
            return out.read_bytes()
    return _encode_to(items, fps, Path(os.fspath(path)).expanduser(), crf=crf, preset=preset, size=(width, height))


def _encode_to(items: list[np.ndarray], fps: float, path: Path, *, crf: int, preset: str, size: tuple[int, int]) -> Path:
    writer = _Mp4Writer(path, fps, size[0], size[1], preset=preset, crf=crf)
    try:
        for rgb in items:
            writer.write(rgb)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def _preview_cache_path(src: Path, max_side: int, max_seconds: Optional[float]) -> Path:
    st = src.stat()
    key = f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{max_side}|{max_seconds}|{PREVIEW_MAX_KBPS}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "vid2vid-previews"
    return folder / f"{src.stem[:40]}-{digest}.mp4"


def preview(
    path: PathLike, max_side: int = 480, max_seconds: Optional[float] = None, out_path: Optional[PathLike] = None
) -> Path:
    """A small H.264 copy of any readable video, for showing in a browser.

    The panel's Video widget sends its whole value to the browser, and browsers cannot play MOV,
    MKV, AVI, HEVC, 10-bit or GIF inputs reliably: so the input is decoded once, turned upright,
    downscaled (longest side <= ``max_side``, even sides), capped at 30 fps and at
    ``PREVIEW_MAX_KBPS`` (so its size follows its length, not the input's bitrate) and re-encoded fast.
    Sound is dropped (the panel only shows pictures). ``max_seconds`` keeps only the beginning.

    Without ``out_path`` the preview is cached in the temp folder, keyed by the file's path,
    size and modification time, so showing the same video again is instant.
    """
    if max_side < 2:
        raise ValueError(f"max_side must be at least 2, got {max_side}")
    info = probe(path)
    src = Path(info.path)
    dest = Path(os.fspath(out_path)).expanduser() if out_path is not None else _preview_cache_path(src, max_side, max_seconds)
    if out_path is None and dest.exists():
        return dest

    out_fps = min(info.fps, PREVIEW_MAX_FPS) if info.fps > 0 else PREVIEW_MAX_FPS
    # Output size in the upright orientation, scaled to fit and rounded to even sides.
    scale = min(1.0, max_side / max(info.width, info.height))
    out_w = max(2, int(round(info.width * scale / 2)) * 2)
    out_h = max(2, int(round(info.height * scale / 2)) * 2)
    stored_w, stored_h = (out_h, out_w) if info.rotation in (90, 270) else (out_w, out_h)

    writer = _Mp4Writer(dest, out_fps, out_w, out_h, preset="veryfast", crf=26, max_kbps=PREVIEW_MAX_KBPS)
    try:
        with av.open(str(src), metadata_errors="replace") as container:
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
                    if (frame.width, frame.height) != (stored_w, stored_h) or frame.format.name != "rgb24":
                        frame = frame.reformat(width=stored_w, height=stored_h, format="rgb24", interpolation="AREA")
                    rgb = frame.to_ndarray()
                    if info.rotation:
                        rgb = np.ascontiguousarray(np.rot90(rgb, k=-(info.rotation // 90)))
                    if previous is None and slot < math.floor(t * out_fps + 1e-6):
                        slot = math.floor(t * out_fps + 1e-6)  # video starts late: no black lead-in
                    previous = rgb
            if previous is not None:
                writer.write(previous)
            else:
                raise InvalidVideoError(f"'{src.name}' gave no frames when decoded. {_FIX_INPUT}")
        return writer.close()
    except InvalidVideoError:
        writer.abort()
        raise
    except _READ_ERRORS as exc:
        writer.abort()
        if _is_write_error(exc) and not isinstance(exc, av.error.FFmpegError):
            raise _not_writable(dest, exc) from exc  # type: ignore[arg-type]
        raise InvalidVideoError(f"'{src.name}' could not be decoded ({_ffmpeg_reason(exc)}). {_FIX_INPUT}") from exc
    except BaseException:
        writer.abort()
        raise


# --------------------------------------------------------------------------------------------
# Checking what was written


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


__all__ = [
    "VideoInfo",
    "SampledFrames",
    "probe",
    "sample_frames",
    "encode_mp4",
    "preview",
    "inspect_mp4",
    "PREVIEW_MAX_FPS",
    "PREVIEW_MAX_KBPS",
]
