"""The ``vid2vid`` command: caption a video, generate from words, or both, from a terminal.

    vid2vid caption VIDEO
    vid2vid generate "a red fox running in snow" -o fox.mp4
    vid2vid run VIDEO -o new.mp4
    vid2vid history
    vid2vid batch clips/ -o out/ --caption-only
    vid2vid models                  the generators and captioners to choose from (--model, --captioner)

Every generation is also saved as a run folder (output.mp4 + run.json) under --output-dir.
Errors are one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence

from . import __version__
from ._options import (CAPTION_FRAMES_OPTION, MODEL_OPTIONS, SETTING_OPTIONS, add_options,
                       pipeline_options_from_args, settings_from_args)
from .errors import Vid2VidError
from .generation.preview import DEFAULT_PREVIEW_EVERY
from .pipeline import models_from_environment
from .progress import Progress

EXIT_ERROR = 1
EXIT_CANCELLED = 130  # the shell's convention for Ctrl-C


class TqdmProgress:
    """One tqdm bar per stage (load, caption, denoise, decode, encode), fed by Progress reports."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._bars: Dict[str, "object"] = {}

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        bar = self._bars.get(progress.stage)
        if bar is None:
            # A download counts bytes: tqdm then shows MB, MB/s and the time left by itself.
            units = ({"unit": "B", "unit_scale": True, "unit_divisor": 1024, "initial": progress.step}
                     if progress.stage == "download" else {"unit": "step"})
            bar = self._bars[progress.stage] = tqdm(total=progress.total, desc=progress.stage, leave=True,
                                                    file=sys.stderr, dynamic_ncols=True, **units)
        bar.update(progress.step - bar.n)
        if progress.step >= progress.total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_options(parser, MODEL_OPTIONS, with_defaults=True, title="models and output")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_caption_options(parser: argparse.ArgumentParser) -> None:
    CAPTION_FRAMES_OPTION.add_to(parser, with_default=True)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    # Settings not given stay unset: the chosen model's defaults fill them in (zeroscope: 24 frames...).
    add_options(parser, SETTING_OPTIONS, with_defaults=False, title="generation settings", model_defaults=True)
    parser.add_argument("-o", "--output", metavar="OUT.mp4", help="also copy the video here (never overwrites)")
    parser.add_argument("--previews", action="store_true",
                        help="save the live previews (what the video looked like every few steps) in the run folder")
    parser.add_argument("--preview-every", type=int, default=DEFAULT_PREVIEW_EVERY, metavar="N",
                        help="steps between previews, with --previews (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vid2vid", description="Caption a video with BLIP and generate a new one from the words.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("caption", help="caption a video", description="Caption frames spread over VIDEO.")
    p.add_argument("video", help="video file (mp4, mov, mkv, webm, avi, gif, ...)")
    p.add_argument("--json", action="store_true", help="print the caption, per-frame captions and timestamps as JSON")
    _add_caption_options(p)
    _add_common(p)

    p = sub.add_parser("generate", help="generate a video from words", description="Generate a video from PROMPT.")
    p.add_argument("prompt", help="what the video should show")
    _add_settings(p)
    _add_common(p)

    p = sub.add_parser("run", help="caption a video, then generate a new one from the caption",
                       description="Caption VIDEO, then generate from the caption (or from --prompt).")
    p.add_argument("video", help="video file")
    p.add_argument("--prompt", help="generate from this text instead of the caption")
    _add_caption_options(p)
    _add_settings(p)
    _add_common(p)

    _add_batch_parser(sub)
    sub.add_parser("models", help="list the models to choose from, with license and download size",
                   description="The catalogue: generators (--model NAME) and captioners (--captioner NAME).")

    p = sub.add_parser("history", help="list past runs in the output folder")
    add_options(p, [o for o in MODEL_OPTIONS if o.dest == "output_dir"], with_defaults=True)
    return parser


def _add_batch_parser(sub) -> None:
    from .batch import DEFAULT_BATCH_DIR, ENGINES

    p = sub.add_parser(
        "batch", help="caption (and generate from) many videos; resumable",
        description="Work through every video of INPUTS (a folder, a glob, or a CSV/JSONL with a 'path' column "
                    "and optional 'prompt', 'seed', 'strength'). One row per input in OUT/results.parquet and "
                    "OUT/results.jsonl; running the same command again does only what is missing.")
    p.add_argument("inputs", nargs="+", metavar="INPUTS", help="folder, glob pattern, CSV/JSONL list or video files")
    p.add_argument("-o", "--out", default=DEFAULT_BATCH_DIR, metavar="OUT",
                   help="batch folder: results table and run folders (default: %(default)s)")
    p.add_argument("--caption-only", action="store_true", help="only caption; generate nothing")
    p.add_argument("--prompt-template", metavar="TEXT",
                   help="prompt for every video, {caption} standing for its caption, e.g. '{caption}, in watercolour'")
    p.add_argument("--engine", choices=ENGINES, default="local", help="local loop or Ray Data (default: %(default)s)")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="a running Ray cluster, e.g. HEAD:6379 or 'auto' (default: start a local Ray)")
    p.add_argument("--concurrency", type=int, metavar="N", help="Ray actors, each with its own models "
                   "(default: one per GPU, or 1)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N inputs")
    _add_caption_options(p)
    add_options(p, SETTING_OPTIONS, with_defaults=True, title="generation settings")
    add_options(p, [o for o in MODEL_OPTIONS if o.dest != "output_dir"], with_defaults=True,
                title="models (run folders go to OUT/runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _batch(args: argparse.Namespace) -> int:
    """Items that failed are rows of the table (and counted in the summary), not a failed command."""
    from .batch import run_batch, summary

    table = run_batch(args.inputs, args.out, caption_only=args.caption_only, prompt_template=args.prompt_template,
                      engine=args.engine, ray_address=args.ray_address, concurrency=args.concurrency,
                      limit=args.limit, progress=not args.quiet, **pipeline_options_from_args(args),
                      **settings_from_args(args))
    if args.quiet:  # the summary is printed with the bar otherwise
        rows = table.to_dict("records") if hasattr(table, "to_dict") else table
        print(summary(rows, Path(args.out).expanduser().resolve()))
    return 0


def _pipeline(args: argparse.Namespace):
    from .pipeline import Vid2VidPipeline

    return Vid2VidPipeline.from_options(**pipeline_options_from_args(args))


def _copy_output(result, output: Optional[str]) -> Optional[Path]:
    """Copy the run's video to -o without ever replacing an existing file."""
    if not output:
        return None
    target = Path(output).expanduser()
    if target.exists():
        raise Vid2VidError(f"{target} already exists; choose another -o name (the video is saved in "
                           f"{result.video_path}).")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.video_path, target)
    return target


def _report_run(result, copied: Optional[Path]) -> None:
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"prompt: {result.settings.prompt}")
    print(f"seed: {result.seed}")
    print(f"video: {copied or result.video_path}")
    print(f"run folder: {result.run_dir}")
    previews = result.record.data.get("previews")
    if previews:
        print(f"previews: {len(previews)} in {result.run_dir / 'previews'}")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one readable line (not a file path and a source line) on a terminal."""
    return f"vid2vid: warning: {message}\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _one_line_warning
    progress = TqdmProgress(enabled=not getattr(args, "quiet", False))
    try:
        with warnings.catch_warnings():
            if args.command == "models":
                from .catalogue import table

                print(table())
                return 0
            if args.command != "history" and models_from_environment(args.models) == "tiny":
                warnings.simplefilter("ignore")  # tiny models: library chatter would drown the output
            if args.command == "history":
                from .runs import RunStore

                records = RunStore(args.output_dir).history()
                if not records:
                    print(f"No runs yet in {args.output_dir}.")
                for record in records:
                    print(f"{record.created}  seed {record.seed}  {record.output_path}  {record.prompt!r}")
                return 0
            if args.command == "batch":
                return _batch(args)
            pipeline = _pipeline(args)
            if args.command == "caption":
                result = pipeline.caption(args.video, on_progress=progress)
                progress.close()
                if args.json:
                    print(json.dumps(result.caption.to_dict(), ensure_ascii=False, indent=2))
                else:
                    print(result.caption.text)
                    for t, text in zip(result.caption.timestamps, result.caption.per_frame):
                        print(f"  {t:7.2f} s  {text}", file=sys.stderr)
                return 0
            previews = {"save_previews": args.previews, "preview_every": args.preview_every}
            if args.command == "generate":
                result = pipeline.generate(args.prompt, on_progress=progress, **previews, **settings_from_args(args))
            else:
                result = pipeline.run(args.video, prompt=args.prompt, on_progress=progress, **previews,
                                      **settings_from_args(args))
            progress.close()
            _report_run(result, _copy_output(result, args.output))
            return 0
    except KeyboardInterrupt:
        progress.close()
        print("vid2vid: cancelled; nothing was saved for the unfinished run." if args.command != "batch" else
              "vid2vid: cancelled; finished videos are in the table; run the same command again to do the rest.",
              file=sys.stderr)
        return EXIT_CANCELLED
    except Vid2VidError as exc:
        progress.close()
        print(f"vid2vid: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
