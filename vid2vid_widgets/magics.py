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

from ._options import CAPTION_FRAMES_OPTION, MODEL_OPTIONS, SETTING_OPTIONS, add_options

PANEL_VARIABLE = "vid2vid_panel"


def _parser() -> argparse.ArgumentParser:
    # The same option names as the vid2vid command, but no defaults: the panel's own apply.
    parser = argparse.ArgumentParser(prog="%vid2vid", add_help=True,
                                     description="Show the vid2vid panel, optionally with a video loaded.")
    parser.add_argument("path", nargs="?", help="a video file to load (e.g. /content/drive/MyDrive/clip.mp4)")
    add_options(parser, SETTING_OPTIONS, with_defaults=False)
    CAPTION_FRAMES_OPTION.add_to(parser, with_default=False)
    add_options(parser, MODEL_OPTIONS, with_defaults=False)
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
