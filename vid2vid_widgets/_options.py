"""The command-line options of ``vid2vid`` and ``%vid2vid``, declared once.

Each generation option names its ``GenerationSettings`` field, and its default is read from
``GenerationSettings()`` and the pipeline's constants, so a changed default reaches the command
line, the magic and the panel together. The magic declares the same options without defaults:
there, whatever is not given is the panel's to decide.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from .catalogue import DEFAULT_CAPTIONER, DEFAULT_GENERATOR
from .generation import BACKENDS, DEFAULT_BACKEND
from .generation.base import SCHEDULERS, GenerationSettings
from .pipeline import DEFAULT_CAPTION_FRAMES, DEFAULT_OUTPUT_DIR


@dataclass(frozen=True)
class Option:
    """One command-line option: its flag, the field or pipeline argument it sets, and its help."""

    flag: str
    dest: str
    type: Any
    help: str
    default: Any = None
    choices: Optional[Sequence[str]] = None
    metavar: Optional[str] = None
    hidden: bool = False  # accepted but not listed in --help (an old spelling)
    const: Any = None  # a flag without a value that sets ``dest`` to this (e.g. --tiny)

    def add_to(self, parser: Any, with_default: bool, model_default: bool = False) -> None:
        """Add to an argparse parser. ``with_default``: set the default. ``model_default``: leave it
        unset (the chosen model's preset decides) but say in the help what the default model uses."""
        if self.const is not None:
            # No default of its own: the option it shortens (--models) supplies it.
            parser.add_argument(self.flag, dest=self.dest, action="store_const", const=self.const, help=self.help)
            return
        kwargs: Dict[str, Any] = {"dest": self.dest, "type": self.type, "choices": self.choices,
                                  "metavar": self.metavar}
        help_text = self.help
        if model_default and self.default not in (None, "") and "default:" not in help_text:
            help_text += f" (default: the model's; {self.default} for {DEFAULT_GENERATOR})"
        if with_default:
            kwargs["default"] = self.default
            if self.default not in (None, ""):
                help_text += " (default: %(default)s)"
        parser.add_argument(self.flag, help=argparse.SUPPRESS if self.hidden else help_text, **kwargs)


_DEFAULTS = GenerationSettings()
_FIELDS = {f.name for f in dataclasses.fields(GenerationSettings)}


def _setting(flag: str, field: str, help: str, kind: Any = None, **extra: Any) -> Option:
    assert field in _FIELDS, field  # a renamed field must fail here, at import, not in a user's terminal
    value = extra.pop("default", getattr(_DEFAULTS, field))
    kind = kind or type(getattr(_DEFAULTS, field))
    extra.setdefault("metavar", None if "choices" in extra else {int: "N", float: "X"}.get(kind, "TEXT"))
    return Option(flag, field, kind, help, value, **extra)


# Generation settings: every field of GenerationSettings except the prompt (a positional argument
# or the caption).
SETTING_OPTIONS = (
    _setting("--seed", "seed", "random seed (default: a random one, recorded in run.json)", int),
    _setting("--steps", "num_steps", "denoising steps"),
    _setting("--frames", "num_frames", "frames to generate"),
    _setting("--guidance", "guidance_scale", "guidance scale"),
    # No default shown: 256x256, or the input's aspect ratio at about as many pixels when following it.
    _setting("--height", "height", "height in pixels, a multiple of 8 (default: the model's, 256 for the default "
             "model, or the input's aspect ratio when following it)", metavar="PX", default=None),
    _setting("--width", "width", "width in pixels, a multiple of 8 (default: the model's, 256 for the default "
             "model, or the input's aspect ratio when following it)", metavar="PX", default=None),
    _setting("--fps", "fps", "frames per second of the output"),
    _setting("--negative", "negative_prompt", "negative prompt: what the video should not show", metavar="TEXT"),
    _setting("--scheduler", "scheduler", "sampler", choices=list(SCHEDULERS)),
    _setting("--strength", "strength", "follow the input video: 1 makes the video from the words alone, lower "
             "keeps more of the input's motion and layout (0.6 is a good start; needs a VIDEO)"),
    _setting("--start", "start", "second of the input where the followed part starts", metavar="S"),
    _setting("--window", "window", "seconds of the input to follow (default: as long as the output lasts)",
             float, metavar="S"),
)
CAPTION_FRAMES_OPTION = Option("--caption-frames", "caption_frames", int,
                               "frames spread over the video to caption", DEFAULT_CAPTION_FRAMES, metavar="K")
# Which models, where they run, where outputs go: Vid2VidPipeline.from_options arguments.
MODEL_OPTIONS = (
    Option("--model", "model", str, f"text-to-video model: a name from `vid2vid models` (default "
           f"{DEFAULT_GENERATOR}), a hub id or a local folder", metavar="NAME_OR_ID"),
    Option("--captioner", "captioner", str, f"captioner: a name from `vid2vid models` (default {DEFAULT_CAPTIONER}), "
           "a BLIP hub id or a local folder", metavar="NAME_OR_ID"),
    Option("--models", "models", str, "'tiny': tiny random versions of the chosen models, for offline tries and "
           "tests (output is noise); default: $VID2VID_MODELS or the real models", choices=["tiny"]),
    Option("--tiny", "models", str, "the same as --models tiny", const="tiny"),
    Option("--backend", "backend", str, f"text-to-video backend for a hub id or folder given as --model (default: "
           f"the model's own; {DEFAULT_BACKEND} for ids)", choices=list(BACKENDS)),
    # The old spelling of --model (an id or folder for the backend): still accepted, no longer listed.
    Option("--generator-model", "generator_model", str, "model id or local folder for the backend",
           metavar="ID_OR_DIR", hidden=True),
    Option("--device", "device", str, "auto (CUDA if present), cuda, cuda:1 or cpu", "auto"),
    Option("--output-dir", "output_dir", str, "where run folders go", DEFAULT_OUTPUT_DIR, metavar="DIR"),
)


def add_options(parser: Any, options: Sequence[Option], with_defaults: bool, title: Optional[str] = None,
                model_defaults: bool = False) -> None:
    """Add ``options`` to an argparse parser (in a titled group when ``title`` is given).

    ``model_defaults``: generation settings left unset when not given, so that the chosen model's
    defaults apply (``catalogue.preset_settings``); the help still shows the default model's values.
    """
    target = parser.add_argument_group(title) if title else parser
    for option in options:
        option.add_to(target, with_defaults, model_defaults)


def settings_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The GenerationSettings fields given on a command line (None: not given)."""
    return {o.dest: getattr(args, o.dest) for o in SETTING_OPTIONS if getattr(args, o.dest, None) is not None}


def pipeline_options_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The ``Vid2VidPipeline.from_options`` arguments given on a command line (None: not given)."""
    names = dict.fromkeys([o.dest for o in MODEL_OPTIONS] + [CAPTION_FRAMES_OPTION.dest])
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


__all__ = ["Option", "SETTING_OPTIONS", "MODEL_OPTIONS", "CAPTION_FRAMES_OPTION", "add_options",
           "settings_from_args", "pipeline_options_from_args"]
