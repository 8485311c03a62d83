"""``encode_mp4`` and the writer behind it: MP4s every browser plays, written atomically.

Write failures become ``OutputNotWritableError`` (the place cannot take the file) or
``Vid2VidError`` (FFmpeg refused), never a bare OSError or PyAV error.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence, Union, overload

import av
import numpy as np
from av.codec.codec import UnknownCodecError

from ..errors import OutputNotWritableError, Vid2VidError
from ._reading import _READ_ERRORS, PathLike, _ffmpeg_reason

# Opening the writer can also meet PyAV's UnknownCodecError: a plain ValueError, raised by
# add_stream when this FFmpeg build has no libx264. It is FFmpeg refusing, not a bug of ours.
_OPEN_ERRORS = (*_READ_ERRORS, UnknownCodecError)

FramesLike = Union[np.ndarray, Sequence[np.ndarray]]

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


def _pad_even(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pad by repeating the last row/column: no pixel is lost and no black line appears."""
    pad_h, pad_w = height - rgb.shape[0], width - rgb.shape[1]
    return np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


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
            if isinstance(exc, _OPEN_ERRORS):
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


def _mux(container: "av.container.OutputContainer", packets: list["av.Packet"]) -> None:
    """One place that hands packets to the muxer (a seam tests use to simulate a full disk)."""
    container.mux(packets)


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
