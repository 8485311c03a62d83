"""``probe``: what a video is (size as displayed, fps, frames, duration, rotation...), and
refusing what cannot be used: no frames, cut short, no index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from ..errors import InvalidVideoError
from ._reading import (
    _FIX_INPUT,
    _READ_ERRORS,
    PathLike,
    _decode_packets,
    _frame_time,
    _name,
    _reading,
    _rotation_cw,
    _seconds,
    _start_time,
    _video_stream,
)

# Above this size probe() estimates the frame count of formats without one (mkv, webm) instead of
# counting packets: counting reads the whole file, which is what probing must not do.
_COUNT_PACKETS_MAX_BYTES = 256 * 1024 * 1024


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
    # Reading the index is memory access only: PyAV raises IndexError just for an index past its
    # length, which is never asked for here.
    entries = stream.index_entries
    n = len(entries)
    if n == 0:
        return
    # The last few entries, not just the last: B-frame reordering can interleave positions.
    last_end = max(entries[i].pos + entries[i].size for i in range(max(0, n - 8), n))
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
    if len(stream.index_entries) > 0 and container.format.name.startswith("mov"):
        return  # MP4/MOV: every frame is indexed, _check_index_within_file has decided
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
