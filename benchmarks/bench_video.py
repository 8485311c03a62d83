"""How fast vid2vid_widgets.video samples and encodes, against the obvious alternatives, in one run.

    python benchmarks/bench_video.py           # 10 s, 1 min and 10 min 1280x720 H.264
    python benchmarks/bench_video.py --quick   # skip the 10-minute video

Sampling k=8 frames three ways, on the same files, in the same process:
  seek      video.sample_frames (seek to the keyframe before each target, decode forward)
  sequential decode every frame from the start up to the last target, keep the 8 wanted ones
  first     open the file and decode only the first frame (what the original app captioned)
Ratios are sequential/seek and seek/first. Encoding: encode_mp4 of 16 frames 256x256 and of
64 frames 512x512 (generated-video sizes). Test videos are generated once and cached in
$VID2VID_MEDIA_CACHE (default: <tmp>/vid2vid-media-cache): H.264 High, 25 fps, keyframe every
2 s, made by repeating 10 s of encoded testsrc2 packets (same decoding cost as unique content).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import av
import numpy as np

# The test-video maker lives with the tests (tests/media.py), outside the wheel: put that folder on
# the path so this script runs from a checkout without pytest.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import media as _media  # noqa: E402  (needs the path above)

from vid2vid_widgets import video  # noqa: E402



def best_of(fn, repeats: int) -> tuple[float, object]:
    """Fastest of `repeats` runs: the least disturbed by other work on a shared machine."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def sequential(path: Path, k: int) -> tuple[int, list[np.ndarray]]:
    """Decode from the start up to the last target, converting the k wanted frames."""
    info = video.probe(path)
    targets = [(i + 0.5) * info.duration / k for i in range(k)]
    picked: list[np.ndarray] = []
    decoded = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # the fair comparison: threaded, as fast as it gets
        previous = None
        for frame in container.decode(stream):
            decoded += 1
            t = float(frame.pts * frame.time_base)
            while len(picked) < k and t > targets[len(picked)] and previous is not None:
                picked.append(previous.to_ndarray(format="rgb24"))
            previous = frame
            if len(picked) == k:
                break
    return decoded, picked


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 10-minute video")
    parser.add_argument("-k", type=int, default=8, help="frames to sample (default 8)")
    args = parser.parse_args(argv)

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; Python {platform.python_version()}, "
          f"PyAV {av.__version__}, FFmpeg {av.library_versions['libavcodec']}")
    lengths = [10, 60] + ([] if args.quick else [600])
    started = time.perf_counter()
    files = {s: _media.benchmark_video(s) for s in lengths}
    print(f"test videos ready in {time.perf_counter() - started:.1f} s (cached in {_media.cache_dir()})\n")

    header = f"{'video':>12} {'frames':>7} | {'seek':>8} {'decoded':>7} | {'sequential':>10} {'decoded':>7} {'seq/seek':>8} | {'first':>7} {'seek/first':>10}"
    print(f"sampling k={args.k} frames from 1280x720 H.264, 25 fps, keyframe every 2 s (best of runs)")
    print(header)
    print("-" * len(header))
    results = {}
    for seconds, path in files.items():
        info = video.probe(path)
        t_seek, got = best_of(lambda: video.sample_frames(path, args.k), 3)
        t_seq, (seq_decoded, _) = best_of(lambda: sequential(path, args.k), 1 if seconds >= 600 else 2)
        t_first, _ = best_of(lambda: first_frame(path), 3)
        assert isinstance(got, video.SampledFrames) and len(got) == args.k
        results[seconds] = (t_seek, t_seq)
        label = f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"
        print(f"{label:>12} {info.frame_count:>7} | {t_seek:>7.3f}s {got.decoded_frames:>7} | "
              f"{t_seq:>9.3f}s {seq_decoded:>7} {t_seq / t_seek:>7.1f}x | {t_first:>6.3f}s {t_seek / t_first:>9.1f}x")

    print("\nencoding with video.encode_mp4 (H.264 High, yuv420p, +faststart, crf 18, veryfast)")
    enc = {}
    for count, side in [(16, 256), (64, 512)]:
        frames = _media.synth_frames(count, (side, side), pattern="testsrc2")
        target = _media.cache_dir() / f"bench-encode-{count}x{side}.mp4"
        t_enc, _ = best_of(lambda: video.encode_mp4(frames, 8, target), 3)
        checked = video.inspect_mp4(target)
        assert checked["frames"] == count and checked["moov_before_mdat"]
        enc[(count, side)] = t_enc
        print(f"  {count:>3} frames {side}x{side}: {t_enc * 1000:8.1f} ms  ({count / t_enc:6.0f} frames/s, "
              f"{target.stat().st_size / 1024:.0f} KiB)")

    print("\ntargets")
    verdicts = []
    if 600 in results:
        t_seek, t_seq = results[600]
        verdicts.append(("sample 10-min video < 1 s", t_seek < 1.0, f"{t_seek:.3f} s"))
        verdicts.append(("seek >= 50x faster than sequential (10 min)", t_seq / t_seek >= 50, f"{t_seq / t_seek:.0f}x"))
    verdicts.append(("encode 16 frames 256^2 < 100 ms", enc[(16, 256)] < 0.1, f"{enc[(16, 256)] * 1000:.0f} ms"))
    verdicts.append(("encode 64 frames 512^2 < 1 s", enc[(64, 512)] < 1.0, f"{enc[(64, 512)] * 1000:.0f} ms"))
    for name, ok, value in verdicts:
        print(f"  [{'ok' if ok else 'MISSED'}] {name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
