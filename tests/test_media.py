"""media.py makes the inputs every other test trusts: check they are what they claim to be.

Read back with PyAV directly (not through vid2vid_widgets.video), so a bug there cannot hide a bug here.
"""

from __future__ import annotations

import time

import av
import numpy as np
import pytest

import media as _media  # tests/media.py (tests/ is on sys.path: pytest's prepend mode)


def _read(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        return c.format.name, stream.codec_context.name, frames


@pytest.mark.parametrize(
    "name, kwargs, fmt, codec, pix_fmt",
    [
        ("a.mp4", {}, "mp4", "h264", "yuv420p"),
        ("a.webm", {"codec": "libvpx-vp9"}, "webm", "vp9", "yuv420p"),
        ("a.mkv", {"codec": "libx265"}, "matroska", "hevc", "yuv420p"),
        ("a.gif", {"codec": "gif"}, "gif", "gif", None),
        ("a10.mp4", {"pix_fmt": "yuv420p10le"}, "mp4", "h264", "yuv420p10le"),
        ("a.bin", {"container": "mov"}, "mov", "h264", "yuv420p"),
    ],
)
def test_make_test_video_writes_what_it_says(tmp_path, name, kwargs, fmt, codec, pix_fmt):
    path = _media.make_test_video(tmp_path / name, size=(32, 24), fps=8, seconds=1, **kwargs)
    container, got_codec, frames = _read(path)
    assert fmt in container and got_codec == codec
    assert len(frames) == 8 and (frames[0].width, frames[0].height) == (32, 24)
    if pix_fmt:
        assert frames[0].format.name == pix_fmt


def test_rotation_is_a_display_matrix(tmp_path):
    path = _media.make_test_video(tmp_path / "r.mp4", rotation=90)
    _, _, frames = _read(path)
    # PyAV reads the matrix counter-clockwise; a clockwise 90 (iPhone portrait) reads as -90.
    assert frames[0].rotation == -90
    assert (frames[0].width, frames[0].height) == (64, 48)  # stored unrotated, like phones do


def test_vfr_has_uneven_frame_durations(tmp_path):
    _, _, frames = _read(_media.make_test_video(tmp_path / "v.mkv", vfr=True, seconds=2))
    gaps = np.diff([f.time for f in frames])
    assert gaps.min() < 0.08 and gaps.max() > 0.15


def test_single_frame_tiny_and_audio_only(tmp_path):
    assert len(_read(_media.make_test_video(tmp_path / "one.mp4", frames=1))[2]) == 1
    assert _read(_media.make_test_video(tmp_path / "t.mp4", size=(2, 2)))[2][0].width == 2
    with av.open(str(_media.make_audio_only(tmp_path / "s.m4a"))) as c:
        assert not c.streams.video and len(c.streams.audio) == 1


def test_long_video_is_made_fast_and_is_real(tmp_path):
    started = time.perf_counter()
    path = _media.make_long_video(tmp_path / "long.mp4", seconds=1800, size=(32, 24), fps=8)
    assert time.perf_counter() - started < 5
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.frames == 14400
        assert float(stream.duration * stream.time_base) == pytest.approx(1800)
        keyframes = [e for e in stream.index_entries if e.is_keyframe]
        assert len(keyframes) == 900  # one every 2 s, like phone video
        # The last minute decodes: timestamps continue across the repeated blocks.
        c.seek(int(1790 / stream.time_base), stream=stream)
        t = next(c.decode(stream)).time
        assert 1786 <= t <= 1790


def test_damaging_helpers(tmp_path):
    src = _media.make_test_video(tmp_path / "x.mp4")
    kinds = [k for k, _, _ in _media.mp4_boxes(src)]
    assert "moov" in kinds and "mdat" in kinds
    cut = _media.remove_box(src, tmp_path / "y.mp4", "moov")
    assert "moov" not in [k for k, _, _ in _media.mp4_boxes(cut)]
    half = _media.truncate_copy(src, tmp_path / "z.mp4")
    assert half.stat().st_size == src.stat().st_size // 2
