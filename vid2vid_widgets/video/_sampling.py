"""``sample_frames``: k upright frames spread over a whole video; ``frames_at``: the frames at given times.

Two samplers give the same answer: one seeks (cost grows with k, not with the video's length),
the other decodes in order, for containers where seeking cannot be trusted.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import av
import numpy as np

from ..errors import InvalidSettingsError, InvalidVideoError
from ._probe import VideoInfo, _probe_open, _seekable
from ._reading import (
    _FIX_INPUT,
    _READ_ERRORS,
    PathLike,
    _decode_packets,
    _frame_time,
    _name,
    _reading,
    _start_time,
    _to_rgb,
    _video_stream,
)


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
    return _sample(path, lambda info: _targets(info, k), max_side, distinct=True)


def frames_at(path: PathLike, times: Sequence[float], max_side: Optional[int] = None) -> SampledFrames:
    """The upright RGB frame on screen at each of ``times`` (seconds from the start), by seeking.

    One frame per time, in order, repeats included: a 10 fps input read at 8 fps times gives some
    frame twice, as a player would show it. Video-to-video reads its input window this way, so the
    cost follows the window's length, not the file's. Times past the end give the last frame.
    """
    times = [float(t) for t in times]
    if not times or any(b < a for a, b in zip(times, times[1:])) or times[0] < 0:
        raise ValueError(f"times must be one or more increasing seconds from 0, got {times[:8]}")
    return _sample(path, lambda info: times, max_side, distinct=False)


def window_times(duration: float, count: int, start: float, length: float) -> Tuple[List[float], List[str]]:
    """``count`` evenly spaced times over the window [start, start + length) of a ``duration``-second video.

    The i-th time is ``start + i * length / count``: frame i of an output played at ``count / length``
    fps shows the input's moment i, so motion keeps its speed. A video shorter than the window is
    followed whole (with a note); a window that starts at or runs past the end is an
    ``InvalidSettingsError`` that says how long the video is.
    """
    if count < 1 or length <= 0 or start < 0:
        raise ValueError(f"need count >= 1, length > 0, start >= 0 (got {count}, {length}, {start})")
    notes: List[str] = []
    if length >= duration:
        if start > 0:
            notes.append(f"the input is {duration:.2f} s long, shorter than the {length:.2f} s window from "
                         f"{start:g} s: all of it is followed from the start instead.")
        else:
            notes.append(f"the input is {duration:.2f} s long, shorter than the {length:.2f} s the output lasts: "
                         "all of it is followed, so its motion plays slower.")
        start, length = 0.0, duration
    elif start + length > duration + 1e-6:
        latest = max(0.0, duration - length)
        raise InvalidSettingsError(
            f"The input window {start:g}-{start + length:g} s runs past the end of the video ({duration:.2f} s long). "
            f"Start at {latest:.2f} s or earlier, or make the output shorter (fewer frames or a higher fps)."
        )
    return [start + i * length / count for i in range(count)], notes


def _sample(path: PathLike, targets_of: Callable[[VideoInfo], List[float]], max_side: Optional[int],
            distinct: bool) -> SampledFrames:
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    with _reading(path, "decoded") as (p, container):
        info, stream = _probe_open(p, container)
        targets = targets_of(info)
        start = _start_time(stream, container)
        result = None
        if _seekable(container):
            result = _sample_by_seeking(container, stream, info, targets, start, _Picks(info.rotation, max_side, distinct))
        if result is None:
            result = _sample_sequentially(p, info, targets, _Picks(info.rotation, max_side, distinct))
        return result


def _targets(info: VideoInfo, k: int) -> list[float]:
    """Centres of k equal segments: never the black first frame, never past the last one."""
    return [(i + 0.5) * info.duration / k for i in range(k)]


def _keyframe_times(stream: "av.VideoStream", start: float) -> Optional[list[float]]:
    """Keyframe times from the container's index (MP4 has all of them), or None if unknown."""
    entries = stream.index_entries  # the demuxer's index, in memory: reading it does not fail
    if len(entries) == 0:
        return None
    tb = stream.time_base
    return sorted(float(e.timestamp * tb) - start for e in entries if e.is_keyframe)


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


def _display_size(stored_w: int, stored_h: int, max_side: Optional[int]) -> tuple[int, int]:
    """Stored-orientation (width, height) to scale to, so the upright result fits in ``max_side``."""
    if not max_side or max(stored_w, stored_h) <= max_side:
        return stored_w, stored_h
    scale = max_side / max(stored_w, stored_h)
    return max(1, int(round(stored_w * scale))), max(1, int(round(stored_h * scale)))


class _Picks:
    """The frames kept for the targets so far, upright and scaled, with their times.

    Both samplers walk the targets in order. ``distinct``: when two targets land on the same frame
    (a short video) it is kept once, since duplicates would only make a captioner repeat itself;
    otherwise (a window to follow) it is kept again, as a player shows it again.
    """

    def __init__(self, rotation: int, max_side: Optional[int], distinct: bool = True) -> None:
        self._rotation = rotation
        self._max_side = max_side
        self._distinct = distinct
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []

    def add(self, frame: "av.VideoFrame", t: float) -> None:
        if self.times and abs(t - self.times[-1]) < 1e-6:
            if not self._distinct:
                self.frames.append(self.frames[-1])
                self.times.append(self.times[-1])
            return  # the same frame as for the previous target
        size = _display_size(frame.width, frame.height, self._max_side)
        self.frames.append(_to_rgb(frame, self._rotation, size))
        self.times.append(max(0.0, t))

    def result(self, info: VideoInfo, decoded_frames: int) -> SampledFrames:
        return SampledFrames(frames=self.frames, timestamps=self.times, info=info, decoded_frames=decoded_frames)


def _sample_by_seeking(
    container: "av.container.InputContainer",
    stream: "av.VideoStream",
    info: VideoInfo,
    targets: list[float],
    start: float,
    picks: "_Picks",
) -> Optional[SampledFrames]:
    """Seek-and-decode sampler; returns None when seeking misbehaves so the caller decodes in order."""
    counter = [0]
    keyframes = _keyframe_times(stream, start)
    # Without an index, keep decoding rather than seek when the next target is this close.
    continue_window = 1.0
    # A seek that lands this far after its target means the container's index cannot be trusted.
    overshoot = max(0.5, 2.0 / info.fps) if info.fps else 0.5
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
            picks.add(*found)
    except (_SeekFailed, *_READ_ERRORS):
        return None
    if not picks.frames:
        return None
    return picks.result(info, counter[0])


def _sample_sequentially(path: Path, info: VideoInfo, targets: list[float], picks: "_Picks") -> SampledFrames:
    """Decode once from the start and keep the frame on screen at each target."""
    counter = [0]
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
            picks.add(*found)
    if not picks.frames:
        raise InvalidVideoError(f"'{_name(path)}' gave no frames when decoded. {_FIX_INPUT}")
    return picks.result(info, counter[0])
