"""``%load_ext vid2vid_widgets`` then ``%vid2vid [PATH] [options]``: the panel in one line.

    %vid2vid                                  an empty panel
    %vid2vid clip.mp4 --steps 20 --seed 42    a panel with clip.mp4 loaded (and captioned)
    %vid2vid --models tiny --no-autocaption   tiny random models, no automatic caption

The panel is displayed and also kept in the notebook as ``vid2vid_panel`` for code that wants it.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any, List

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from .generation import BACKENDS, SCHEDULERS

PANEL_VARIABLE = "vid2vid_panel"


def _parser() -> argparse.ArgumentParser:
    # The same option names as the vid2vid command, but no defaults: the panel's own apply.
    parser = argparse.ArgumentParser(prog="%vid2vid", add_help=True,
                                     description="Show the vid2vid panel, optionally with a video loaded.")
    parser.add_argument("path", nargs="?", help="a video file to load (e.g. /content/drive/MyDrive/clip.mp4)")
    parser.add_argument("--seed", type=int, help="fixed seed (default: a random one each run)")
    parser.add_argument("--steps", type=int, dest="num_steps", help="denoising steps")
    parser.add_argument("--frames", type=int, dest="num_frames", help="frames to generate")
    parser.add_argument("--guidance", type=float, dest="guidance_scale", help="guidance scale")
    parser.add_argument("--height", type=int, help="height in pixels (multiple of 8)")
    parser.add_argument("--width", type=int, help="width in pixels (multiple of 8)")
    parser.add_argument("--fps", type=int, help="frames per second of the output")
    parser.add_argument("--negative", dest="negative_prompt", help="what the video should not show")
    parser.add_argument("--scheduler", choices=list(SCHEDULERS))
    parser.add_argument("--caption-frames", type=int, dest="caption_frames", help="frames to caption")
    parser.add_argument("--models", choices=["tiny"], help="'tiny': tiny random models (tests, offline demos)")
    parser.add_argument("--backend", choices=list(BACKENDS), help="text-to-video backend")
    parser.add_argument("--generator-model", dest="generator_model", metavar="ID_OR_DIR",
                        help="model id or local folder for the backend")
    parser.add_argument("--captioner", metavar="ID_OR_DIR", help="BLIP model id or local folder")
    parser.add_argument("--device", help="auto (default), cuda or cpu")
    parser.add_argument("--output-dir", dest="output_dir", help="where run folders go")
    parser.add_argument("--no-autocaption", dest="autocaption", action="store_false",
                        help="do not caption a video as soon as it is loaded")
    return parser


def parse_args(line: str) -> argparse.Namespace:
    """Parse a ``%vid2vid`` line; raises ``SystemExit`` like argparse on bad options or ``--help``."""
    return _parser().parse_args(shlex.split(line, posix=os.name != "nt"))


def panel_from_args(args: argparse.Namespace) -> Any:
    """The panel a parsed ``%vid2vid`` line asks for (nothing loaded yet)."""
    from .panel import Vid2VidPanel

    options = {k: v for k, v in vars(args).items() if v is not None and k not in ("path", "models", "autocaption")}
    panel = Vid2VidPanel(models=args.models, autocaption=args.autocaption, **options)
    if args.path:
        panel.path_text.value = args.path
    return panel


@magics_class
class Vid2VidMagics(Magics):
    @line_magic
    def vid2vid(self, line: str = "") -> None:
        """Show the vid2vid panel: ``%vid2vid [PATH] [--seed N --steps N --frames N --models tiny ...]``.

        ``%vid2vid --help`` lists every option. The panel is also stored as ``vid2vid_panel``.
        """
        try:
            args = parse_args(line)
        except SystemExit:  # argparse has already printed the usage or the problem
            return
        panel = panel_from_args(args)
        self.shell.user_ns[PANEL_VARIABLE] = panel
        display(panel)
        if args.path:
            # After display: in Colab the load runs right here, and its progress should be visible.
            panel.load(args.path)


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%vid2vid``. Loading twice only registers the same magic again."""
    ipython.register_magics(Vid2VidMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Nothing to undo beyond what IPython does; present so ``%reload_ext`` works cleanly."""


__all__: List[str] = ["Vid2VidMagics", "load_ipython_extension", "parse_args", "panel_from_args", "PANEL_VARIABLE"]
