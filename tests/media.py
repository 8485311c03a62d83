"""Real, encoded test videos made on the spot (for tests and benchmarks; not part of the wheel).

Tests must not depend on files nobody can regenerate, and must not fake decoding: every helper
here writes a genuine file through FFmpeg (PyAV), with the same codecs, containers and metadata
that people actually upload (phone rotation, variable frame rate, HEVC, VP9, GIF, 10-bit, odd
sizes, audio-only, very long files). ``vid2vid_widgets.video`` stays the only *product* code that
touches video; this module exists so that every engineer's tests can make inputs the same way.

Typical use (tests/ is on sys.path under pytest; benchmarks add it themselves)::

    from media import make_test_video, benchmark_video
    path = make_test_video(tmp_path / "phone.mp4", size=(64, 48), rotation=90)
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import av
import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

# Fast settings per encoder: test files should cost milliseconds, not seconds.
_FAST_OPTIONS = {
    "libx264": {"preset": "ultrafast"},
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=error"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8"},
}

# Container chosen from the extension unless given; ``.bin`` & co. need it spelled out.
_LAVFI_PATTERNS = {"testsrc", "testsrc2", "mandelbrot", "smptebars", "smptehdbars", "rgbtestsrc", "color"}


def _frames_lavfi(pattern: str, width: int, height: int, count: int, rate: Fraction) -> Iterator[np.ndarray]:
    """RGB frames from one of FFmpeg's synthetic sources (moving shapes, a clock, a fractal...)."""
    # lavfi sources refuse sizes below a few pixels; make them bigger and scale down after.
    src_w, src_h = max(width, 16), max(height, 16)
    spec = f"{pattern}=size={src_w}x{src_h}:rate={rate.numerator}/{rate.denominator}"
    if pattern == "color":
        spec = f"color=c=teal:size={src_w}x{src_h}:rate={rate.numerator}/{rate.denominator}"
    produced = 0
    with av.open(spec, format="lavfi") as source:
        for frame in source.decode(video=0):
            if produced >= count:
                break
            if (src_w, src_h) != (width, height):
                frame = frame.reformat(width=width, height=height)
            yield frame.to_ndarray(format="rgb24")
            produced += 1


def _frames_numpy(pattern: str, width: int, height: int, count: int) -> Iterator[np.ndarray]:
    """Frames computed here, for sizes or looks the lavfi sources cannot give."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(count):
        if pattern == "noise":
            yield rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        elif pattern == "gradient":
            # A diagonal ramp that moves one pixel a frame, plus the frame index in the blue channel.
            r = ((xx + i) * 255 // max(1, width - 1)) % 256
            g = (yy * 255 // max(1, height - 1)) % 256
            b = np.full_like(r, (i * 37) % 256)
            yield np.stack([r, g, b], axis=-1).astype(np.uint8)
        else:
            raise ValueError(f"unknown pattern {pattern!r}")


def synth_frames(
    count: int, size: tuple[int, int] = (64, 48), pattern: str = "testsrc2", fps: float = 8
) -> np.ndarray:
    """``count`` RGB frames of ``size`` (width, height) as a (T, H, W, 3) uint8 array."""
    width, height = size
    rate = Fraction(fps).limit_denominator(1001)
    if pattern in _LAVFI_PATTERNS:
        frames = list(_frames_lavfi(pattern, width, height, count, rate))
    else:
        frames = list(_frames_numpy(pattern, width, height, count))
    return np.stack(frames)


def make_test_video(
    path: PathLike,
    *,
    size: tuple[int, int] = (64, 48),
    fps: float = 8,
    seconds: float = 2,
    frames: Optional[int] = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    pattern: str = "testsrc2",
    container: Optional[str] = None,
    vfr: bool = False,
    gop_seconds: Optional[float] = 2.0,
    audio: bool = False,
    options: Optional[dict[str, str]] = None,
) -> Path:
    """Write a real encoded video and return its path.

    size: (width, height) as stored (before rotation). ``rotation`` is the clockwise turn a player
    must apply, written as a display matrix exactly like phones do (iPhone portrait = 90), so
    ``probe`` reports (height, width). ``vfr`` gives alternately short and long frame durations.
    ``frames`` overrides ``seconds * fps``. ``gop_seconds`` puts a keyframe every so often, like
    phone and web video (None: the encoder's default). ``container`` forces the format (needed
    when the extension lies, e.g. an mp4 named ``.bin``). ``pattern``: a lavfi source (testsrc2,
    mandelbrot, smptebars, color) or ``gradient`` / ``noise`` computed with numpy.

    codec "gif" writes an animated GIF (8-bit palette); ``pix_fmt`` is then ignored.
    Odd sizes need a codec/pix_fmt that allows them (e.g. libx264 with yuv444p, or libvpx-vp9).
    """
    width, height = size
    count = frames if frames is not None else max(1, int(round(seconds * fps)))
    rate = Fraction(fps).limit_denominator(1001)
    if pattern in _LAVFI_PATTERNS:
        source = _frames_lavfi(pattern, width, height, count, rate)
    else:
        source = _frames_numpy(pattern, width, height, count)
    return write_video(
        path,
        source,
        fps=fps,
        codec=codec,
        pix_fmt=pix_fmt,
        rotation=rotation,
        container=container,
        vfr=vfr,
        gop_seconds=gop_seconds,
        audio=audio,
        options=options,
        size=size,
    )


def write_video(
    path: PathLike,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 8,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    container: Optional[str] = None,
    vfr: bool = False,
    gop_seconds: Optional[float] = 2.0,
    audio: bool = False,
    options: Optional[dict[str, str]] = None,
    size: Optional[tuple[int, int]] = None,
) -> Path:
    """Encode given RGB frames (H, W, 3 uint8) with any codec/container/rotation; see make_test_video.

    Unlike ``video.encode_mp4`` (browser-safe output only), this writes whatever a test needs as
    *input*: HEVC, VP9, GIF, 10-bit, a phone's rotation flag, variable frame rate.
    """
    path = Path(path)
    iterator = iter(frames)
    first = next(iterator)
    if size is None:
        size = (first.shape[1], first.shape[0])
    width, height = size
    rate = Fraction(fps).limit_denominator(1001)
    if codec == "gif":
        pix_fmt = "rgb8"  # the gif encoder takes 8-bit palettised input; rgb8 converts directly
    opts = dict(_FAST_OPTIONS.get(codec, {}))
    if gop_seconds is not None and codec != "gif":
        opts.setdefault("g", str(max(1, int(round(gop_seconds * float(rate))))))
    opts.update(options or {})

    count = 0
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if vfr:
            # A millisecond clock lets frame durations vary; the muxer records each one.
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if rotation % 360:
            # PyAV counts counter-clockwise (as FFmpeg's display matrix reads back); phones' tags
            # and our VideoInfo.rotation count clockwise (FFmpeg: theta = -av_display_rotation_get).
            stream.set_display_rotation(-(rotation % 360))
        audio_stream = out.add_stream("aac", rate=44100) if audio else None
        t_ms = 0
        for index, rgb in enumerate(itertools.chain([first], iterator)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if vfr:
                frame.pts = t_ms
                frame.time_base = Fraction(1, 1000)
                step = 1000.0 / float(rate)
                t_ms += int(round(step * (0.5 if index % 2 == 0 else 1.5)))
            for packet in stream.encode(frame):
                out.mux(packet)
            count += 1
        for packet in stream.encode():
            out.mux(packet)
        if audio_stream is not None:
            _write_tone(out, audio_stream, count / float(rate))
    return path


def _write_tone(out: "av.container.OutputContainer", stream: "av.AudioStream", seconds: float) -> None:
    """A 440 Hz tone into an already-added audio stream (AAC needs 1024-sample frames)."""
    sample_rate = 44100
    total = int(seconds * sample_rate)
    t = np.arange(total, dtype=np.float32) / sample_rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, total, 1024):
        chunk = tone[start : start + 1024]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def make_audio_only(path: PathLike, seconds: float = 1.0) -> Path:
    """An M4A/MP4 file with an AAC track and no video stream (people do pick these by mistake)."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100)
        _write_tone(out, stream, seconds)
    return path


def make_long_video(
    path: PathLike,
    *,
    seconds: float,
    size: tuple[int, int] = (64, 48),
    fps: float = 25,
    unique_seconds: float = 10.0,
    gop_seconds: float = 2.0,
    pattern: str = "testsrc2",
    codec: str = "libx264",
    container: Optional[str] = None,
) -> Path:
    """A long video made fast: encode ``unique_seconds`` once, then repeat those packets.

    Each repeat starts on a keyframe (a whole number of GOPs), so the result decodes and seeks
    like any camera file of that length: same GOP structure, same packet sizes, same decoding
    cost per frame. Only the picture repeats every ``unique_seconds``; a 10-minute 720p file
    takes seconds instead of minutes.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    gop = max(1, int(round(gop_seconds * float(rate))))
    unique_frames = max(gop, int(round(unique_seconds * float(rate))) // gop * gop)
    total_frames = int(round(seconds * float(rate)))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        block = make_test_video(
            Path(tmp) / "block.mkv",
            size=size,
            fps=fps,
            frames=min(unique_frames, total_frames),
            codec=codec,
            pattern=pattern,
            gop_seconds=gop_seconds,
            container="matroska",
            # Closed GOPs with a keyframe every `gop` frames exactly, so the block can repeat.
            options={"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"} if codec == "libx264" else None,
        )
        with av.open(str(block)) as src:
            in_stream = src.streams.video[0]
            packets = [p for p in src.demux(in_stream) if p.size > 0]
            frame_ticks = int(round(1 / (float(rate) * in_stream.time_base)))
            block_ticks = frame_ticks * len(packets)
            with av.open(str(path), "w", format=container) as out:
                out_stream = out.add_stream_from_template(in_stream)
                written = 0
                repeat = 0
                while written < total_frames:
                    for packet in packets:
                        if written >= total_frames:
                            break
                        # Copy so the cached packet keeps its original timestamps.
                        copy = av.Packet(bytes(packet))
                        copy.pts = packet.pts + repeat * block_ticks
                        copy.dts = packet.dts + repeat * block_ticks
                        copy.duration = packet.duration
                        copy.is_keyframe = packet.is_keyframe
                        copy.time_base = in_stream.time_base
                        copy.stream = out_stream
                        out.mux(copy)
                        written += 1
                    repeat += 1
    return path


def cache_dir() -> Path:
    """Where generated benchmark videos are kept between runs (outside the repository)."""
    root = Path(os.environ.get("VID2VID_MEDIA_CACHE", Path(tempfile.gettempdir()) / "vid2vid-media-cache"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def benchmark_video(seconds: float, size: tuple[int, int] = (1280, 720), fps: float = 25) -> Path:
    """A cached H.264 video like a phone's or a web download's: keyframe every 2 s, B-frames."""
    key = hashlib.sha1(f"v1-{seconds}-{size}-{fps}".encode()).hexdigest()[:10]
    path = cache_dir() / f"bench-{size[0]}x{size[1]}-{int(seconds)}s-{key}.mp4"
    if not path.exists():
        tmp = path.with_name(path.stem + ".partial.mp4")
        make_long_video(tmp, seconds=seconds, size=size, fps=fps, unique_seconds=min(seconds, 10.0))
        os.replace(tmp, path)
    return path


def truncate_copy(source: PathLike, dest: PathLike, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of a file's bytes: what an interrupted download leaves."""
    data = Path(source).read_bytes()
    Path(dest).write_bytes(data[: int(len(data) * fraction)])
    return Path(dest)


def mp4_boxes(path: PathLike) -> list[tuple[str, int, int]]:
    """Top-level MP4 boxes as (type, offset, size); for tests that damage files on purpose."""
    boxes = []
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        offset = 0
        while offset + 8 <= end:
            f.seek(offset)
            header = f.read(16)
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if size == 1:
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:
                size = end - offset
            if size < 8:
                break
            boxes.append((kind, offset, size))
            offset += size
    return boxes


def remove_box(source: PathLike, dest: PathLike, kind: str = "moov") -> Path:
    """Copy an MP4 without one top-level box (e.g. ``moov``: a recording that never finished)."""
    data = Path(source).read_bytes()
    kept = b"".join(data[o : o + s] for k, o, s in mp4_boxes(source) if k != kind)
    Path(dest).write_bytes(kept)
    return Path(dest)


__all__: Sequence[str] = [
    "make_test_video",
    "write_video",
    "make_audio_only",
    "make_long_video",
    "benchmark_video",
    "synth_frames",
    "cache_dir",
    "truncate_copy",
    "mp4_boxes",
    "remove_box",
]
