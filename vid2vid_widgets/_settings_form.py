"""The panel's Settings section: one widget whose ``value`` is a ``GenerationSettings``.

Built from a ``GenerationSettings`` (the defaults shown) and read back as one (the prompt is the
panel's caption box, so the form's value has an empty prompt: the panel fills it in). Caption frames
and the backend sit in the same section because people look for them there, but they are not
generation settings: the form exposes them as plain attributes.
"""

from __future__ import annotations

import html
from typing import List, Optional, Sequence, Tuple

import ipywidgets as widgets

from . import catalogue
from ._compat import set_titles
from .generation.base import SCHEDULERS, GenerationSettings
from .generation.preview import DEFAULT_PREVIEW_EVERY

_WIDE = {"description_width": "initial"}


def _int_text(description: str, value: int, low: int, high: int) -> widgets.BoundedIntText:
    return widgets.BoundedIntText(value=value, min=low, max=high, description=description, style=_WIDE,
                                  layout=widgets.Layout(width="180px"))


class SettingsForm(widgets.Accordion):
    """Seed (or random), steps, frames, guidance, size, fps, negative prompt, scheduler; caption frames; backend.

    ``value`` reads the widgets into a ``GenerationSettings`` (prompt left empty). The strength slider
    and the start of the input window are in ``follow_row``, for the panel to show beside the caption.
    """

    def __init__(self, settings: GenerationSettings, caption_frames: int, backend: str,
                 backends: Sequence[str], model: Optional[str] = None,
                 preview_every: int = DEFAULT_PREVIEW_EVERY, save_previews: bool = False) -> None:
        s = settings
        # The catalogue's generators (and the model in use when it is an id or folder of its own).
        model = model or catalogue.DEFAULT_GENERATOR
        self.model = widgets.Dropdown(options=model_options(model), value=model, description="Model", style=_WIDE,
                                      layout=widgets.Layout(width="460px"))
        self.model.add_class("vid2vid-model")
        self.model_info = widgets.HTML(model_info_html(model))
        self.model_info.add_class("vid2vid-model-info")
        self.model.observe(lambda c: setattr(self.model_info, "value", model_info_html(c["new"])), names="value")
        self.seed = widgets.IntText(value=s.seed or 0, description="Seed", style=_WIDE,
                                    layout=widgets.Layout(width="200px"), disabled=s.seed is None)
        self.random_seed = widgets.Checkbox(value=s.seed is None, description="random", indent=False,
                                            layout=widgets.Layout(width="auto"))
        self.steps = _int_text("Steps", s.num_steps, 1, 1000)
        self.frames = _int_text("Frames", s.num_frames, 1, 512)
        self.guidance = widgets.BoundedFloatText(value=s.guidance_scale, min=0.0, max=50.0, step=0.5,
                                                 description="Guidance", style=_WIDE,
                                                 layout=widgets.Layout(width="180px"))
        # Plain IntText: a size that is not a multiple of 8 is corrected by the pipeline, with a note.
        self.height = widgets.IntText(value=s.height, description="Height", style=_WIDE,
                                      layout=widgets.Layout(width="180px"))
        self.width = widgets.IntText(value=s.width, description="Width", style=_WIDE,
                                     layout=widgets.Layout(width="180px"))
        self.fps = _int_text("FPS", s.fps, 1, 120)
        self.negative_prompt = widgets.Text(value=s.negative_prompt, description="Negative prompt", style=_WIDE,
                                            placeholder="what the video should not show, e.g. blurry, text",
                                            layout=widgets.Layout(width="100%"))
        self.caption_frames = _int_text("Caption frames", caption_frames, 1, 64)
        self.scheduler = widgets.Dropdown(options=list(SCHEDULERS), value=s.scheduler, description="Scheduler",
                                          style=_WIDE, layout=widgets.Layout(width="220px"))
        self.backend = widgets.Dropdown(options=list(backends), value=backend, description="Backend",
                                        style=_WIDE, layout=widgets.Layout(width="220px"))
        # Video-to-video: shown in the panel's main area (``follow_row``), not in the folded section.
        self.strength = widgets.FloatSlider(value=s.strength, min=0.0, max=1.0, step=0.05, readout_format=".2f",
                                            description="Follow the input video", style=_WIDE, continuous_update=False,
                                            layout=widgets.Layout(width="360px"))
        self.strength.add_class("vid2vid-strength")
        self.start = widgets.BoundedFloatText(value=s.start, min=0.0, max=10**7, step=0.5, description="from second",
                                              style=_WIDE, layout=widgets.Layout(width="160px"))
        self.start.add_class("vid2vid-start")
        self._window = s.window  # no widget: as long as the output lasts, unless set in code
        follow_help = widgets.HTML("<small>1 = from the words alone; lower keeps more of your video's motion and "
                                   "layout (0.6 is a good start)</small>")
        self.follow_row = widgets.HBox([self.strength, self.start, follow_help],
                                       layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        # Live preview: not a generation setting (it never changes the video), so not in ``value``.
        self.preview_every = _int_text("Preview every N steps (0: off)", preview_every, 0, 1000)
        self.preview_every.layout.width = "260px"
        self.preview_every.add_class("vid2vid-preview-every")
        self.save_previews = widgets.Checkbox(value=save_previews, description="save previews with the run",
                                              indent=False, layout=widgets.Layout(width="auto"))
        self.random_seed.observe(lambda c: setattr(self.seed, "disabled", bool(c["new"])), names="value")
        rows = [
            widgets.HBox([self.model, self.model_info], layout=widgets.Layout(align_items="center",
                                                                              flex_flow="row wrap")),
            widgets.HBox([self.seed, self.random_seed, self.steps, self.frames, self.guidance]),
            widgets.HBox([self.height, self.width, self.fps, self.caption_frames]),
            self.negative_prompt,
            widgets.HBox([self.scheduler, self.backend]),
            widgets.HBox([self.preview_every, self.save_previews], layout=widgets.Layout(align_items="center")),
        ]
        super().__init__(children=[widgets.VBox(rows)], selected_index=None)
        set_titles(self, ["Settings"])
        self.add_class("vid2vid-settings")

    @property
    def value(self) -> GenerationSettings:
        """The settings as shown (prompt empty: the caption box holds it)."""
        return GenerationSettings(
            negative_prompt=self.negative_prompt.value,
            seed=None if self.random_seed.value else int(self.seed.value),
            num_frames=int(self.frames.value),
            num_steps=int(self.steps.value),
            guidance_scale=float(self.guidance.value),
            height=int(self.height.value),
            width=int(self.width.value),
            fps=int(self.fps.value),
            scheduler=self.scheduler.value,
            strength=float(self.strength.value),
            start=float(self.start.value),
            window=self._window,
        )

    def show_defaults(self, settings: GenerationSettings) -> None:
        """Show a model's default settings (frames, size, steps, guidance, fps, negative prompt, scheduler).

        The seed, the strength and the input window are the person's, not the model's: they stay.
        """
        self.frames.value, self.steps.value = settings.num_frames, settings.num_steps
        self.guidance.value, self.fps.value = settings.guidance_scale, settings.fps
        self.height.value, self.width.value = settings.height, settings.width
        self.negative_prompt.value, self.scheduler.value = settings.negative_prompt, settings.scheduler

    def keep_seed(self, seed: int) -> None:
        """Show the seed a run used, so unticking "random" repeats that exact video."""
        self.seed.value = int(seed)

    def use_seed(self, seed: int) -> None:
        """Fix the seed (random off): the next Generate makes that video again."""
        self.random_seed.value = False
        self.seed.value = int(seed)


def model_options(current: str) -> List[Tuple[str, str]]:
    """(label, value) for every generator preset: "name · license · download size"."""
    options = [(f"{p.name} \u00b7 {p.license_text()} \u00b7 {catalogue.size_text(p.download_bytes)}", p.name)
               for p in catalogue.GENERATORS]
    if current not in {value for _, value in options}:
        options.append((f"{current} (your model)", current))
    return options


def model_info_html(name: str) -> str:
    """License, download size, video-to-video and the T4 note of a preset (a plain note for other models)."""
    preset = catalogue.generator_preset(name)
    if preset is None:
        return "<small>Your own model id or folder: license and size are those of its model card.</small>"
    follows = "follows an input video" if preset.video_to_video else "words only"
    return (f'<small><a href="{html.escape(preset.license_url)}" target="_blank">{html.escape(preset.license_text())}'
            f"</a> \u00b7 {catalogue.size_text(preset.download_bytes)} download \u00b7 {follows} \u00b7 "
            f"T4: {html.escape(preset.t4_note)}</small>")


__all__ = ["SettingsForm", "model_options", "model_info_html"]
