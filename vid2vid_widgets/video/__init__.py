"""Every byte of video this package reads or writes goes through here (PyAV, i.e. FFmpeg).

Why one package: decoding is where user files break things (phones' rotation flags, VFR, HEVC,
files cut short by a failed upload) and encoding is where browsers refuse output (mp4v, yuv444p,
odd sizes, moov at the end). Keeping both in one place means one set of rules, one set of tests,
and one place that turns FFmpeg's errors into messages a person can act on.

Public functions (split by job into small private modules; import them from here):

- ``probe(path)``: what is this file (size as displayed, fps, frames, duration, rotation...)?
  (``_probe``)
- ``sample_frames(path, k)``: k RGB frames spread over the whole video, each reached by seeking;
  ``frames_at(path, times)`` and ``window_times(...)``: the frames of a time window, for
  video-to-video. (``_sampling``)
- ``fit_frames(frames, width, height)``: centre-crop to an aspect ratio and resize. (``fit``)
- ``encode_mp4(frames, fps, path)``: H.264 High, yuv420p, +faststart, even sides, written
  atomically. (``_encoding``)
- ``preview(path, out_path=...)``: a small browser-playable copy of any input, for the panel's
  Video widget; it does not cache (``Vid2VidPipeline.preview`` does). (``_preview``)
- ``inspect_mp4(path)``: what a written file really contains (for tests and sanity checks).
  (``_inspect``)

Opening inputs, reading frames and translating FFmpeg's errors is shared by all of them
(``_reading``).

No bare ``av`` exception leaves this package: unreadable input raises ``InvalidVideoError``,
unwritable output raises ``OutputNotWritableError``, anything else FFmpeg refuses raises
``Vid2VidError``; each message names the file and says what to do.
"""

from __future__ import annotations

from ._encoding import encode_mp4
from ._inspect import inspect_mp4
from ._preview import PREVIEW_MAX_FPS, PREVIEW_MAX_KBPS, preview
from ._probe import VideoInfo, probe
from ._sampling import SampledFrames, frames_at, sample_frames, window_times
from .fit import fit_frames

__all__ = [
    "VideoInfo",
    "SampledFrames",
    "probe",
    "sample_frames",
    "frames_at",
    "window_times",
    "fit_frames",
    "encode_mp4",
    "preview",
    "inspect_mp4",
    "PREVIEW_MAX_FPS",
    "PREVIEW_MAX_KBPS",
]
