"""``Vid2VidPanel``: the notebook panel. Widgets, layout and event wiring only; the work is the pipeline's.

    from vid2vid_widgets import Vid2VidPanel
    display(Vid2VidPanel())

Building the panel loads nothing: the pipeline (and through it the models) is created on first use,
and models come from the process-wide registry, so a second panel in the same kernel reuses them.
In Colab the work runs inside the click handler (Colab does not render widget updates sent from
background threads); elsewhere it runs in a worker thread, which keeps Cancel working.
"""

from __future__ import annotations

import html
import os
import threading
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import ipywidgets as widgets

from . import _panel_text as text
from . import catalogue
from ._compat import clear_upload, parse_upload_value, set_titles, upload_trigger_trait
from ._history import HistoryList
from ._runner import Runner
from ._settings_form import SettingsForm, model_options
from ._variations_grid import VariationsGrid
from .errors import GenerationCancelled, InvalidSettingsError, Vid2VidError
from .generation import BACKENDS
from .generation.base import GenerationSettings
from .generation.preview import DEFAULT_PREVIEW_EVERY, png_bytes
from .pipeline import (DEFAULT_CAPTION_FRAMES, PREVIEW_SECONDS, Vid2VidPipeline, models_from_environment,
                       split_options)
from .progress import CancelToken, Preview, Progress
from .runs import RunRecord

VIDEO_ACCEPT = "video/*,.mp4,.mov,.mkv,.webm,.avi,.gif,.m4v"
_WIDE = {"description_width": "initial"}


def _button(description: str, css: str, tooltip: str = "", style: str = "", icon: str = "") -> widgets.Button:
    button = widgets.Button(description=description, tooltip=tooltip, button_style=style, icon=icon)
    button.add_class(css)
    return button


class Vid2VidPanel(widgets.VBox):
    """Upload or name a video, read and edit its caption, generate a new video, compare both.

    Args:
        pipeline: a ``Vid2VidPipeline`` to use; by default one is built on first use.
        models: "tiny" for the tiny random models (tests, offline demos); default
            ``$VID2VID_MODELS`` or the real models.
        autocaption: caption a video as soon as it is loaded.
        runner: where the work runs (default: inline in Colab, a worker thread elsewhere).
        preview_every: show what the video looks like every N denoising steps (0: no live preview).
        save_previews: also save those previews in each run's folder.
        **settings: ``GenerationSettings`` defaults (seed, num_steps, num_frames, guidance_scale,
            height, width, fps, negative_prompt, scheduler), and ``caption_frames``, ``output_dir``,
            ``model`` (a catalogue name, hub id or folder), ``captioner``, ``backend``, ``device``,
            ``dtype`` for the pipeline. Settings given here stay when another model is chosen; the
            others follow the chosen model's defaults.
    """

    def __init__(
        self,
        pipeline: Optional[Vid2VidPipeline] = None,
        models: Optional[str] = None,
        *,
        autocaption: bool = True,
        runner: Optional[Runner] = None,
        preview_every: int = DEFAULT_PREVIEW_EVERY,
        save_previews: bool = False,
        **settings: Any,
    ) -> None:
        pipeline_options, setting_values = split_options(settings, "panel")
        if pipeline is not None and set(pipeline_options) - {"caption_frames"}:
            raise TypeError(f"Pass {', '.join(sorted(set(pipeline_options) - {'caption_frames'}))} to the pipeline "
                            "you give the panel, not to the panel.")
        self._models = pipeline.models if pipeline is not None else models_from_environment(models)
        # Options for the pipeline built on first use; the form's caption frames, model and backend join them then.
        self._pipeline_options = {k: v for k, v in pipeline_options.items()
                                  if k not in ("caption_frames", "backend", "model", "generator_model")}
        self._given_settings = dict(setting_values)
        self._pipeline = pipeline
        self._pipeline_lock = threading.Lock()
        self._runner = runner or Runner()
        self._cancel = CancelToken()
        model, preset, backend = _model_choice(pipeline, pipeline_options)
        if pipeline is not None:
            defaults = pipeline.settings.replace(**setting_values)
        else:
            defaults = catalogue.preset_settings(preset, setting_values)
        caption_frames = pipeline_options.get("caption_frames",
                                              pipeline.caption_frames if pipeline is not None else DEFAULT_CAPTION_FRAMES)

        self.loaded = None  # LoadedVideo shown on the left
        self.caption_result = None  # CaptionResult of the loaded video
        self.runs: List[Any] = []  # RunResults made by this panel, oldest first
        self.last_result = None
        self.last_error: Optional[BaseException] = None  # for tests and bug reports
        self._reverting_backend = False
        self._syncing_model = False  # the model and backend dropdowns follow each other without looping

        self._build_inputs(autocaption)
        self._build_videos()
        self._build_caption()
        self._build_actions()
        self._build_settings(defaults, int(caption_frames), backend, model, int(preview_every), bool(save_previews))
        self._build_history()
        super().__init__(children=self._layout())
        self.add_class("vid2vid-panel")
        self._wire()
        self._set_status("Upload a video or type its path and press Load.")

    # -- building ------------------------------------------------------------------------------
    def _build_inputs(self, autocaption: bool) -> None:
        self.upload = widgets.FileUpload(accept=VIDEO_ACCEPT, multiple=False, description="Upload video")
        self.upload.add_class("vid2vid-upload")
        self.path_text = widgets.Text(placeholder="or a path, e.g. /content/drive/MyDrive/clip.mp4",
                                      layout=widgets.Layout(flex="1 1 auto", width="auto"))
        self.path_text.add_class("vid2vid-path")
        self.load_button = _button("Load", "vid2vid-load", "Load the video at this path", icon="folder-open")
        self.autocaption = widgets.Checkbox(value=autocaption, description="Caption after loading", indent=False,
                                            layout=widgets.Layout(width="auto"))
        # Colab's upload fails from about 1 MB (the whole file travels in one message): say so up front.
        self.info = widgets.HTML("<i>No video loaded yet. For videos over about 1 MB in Colab, copy the file to "
                                 "/content or your Drive and type its path instead of uploading.</i>")
        self.info.add_class("vid2vid-info")
        self.models_notice = widgets.HTML(text.models_notice_html(self._models, self._pipeline))
        self.models_notice.add_class("vid2vid-models-notice")

    def _build_videos(self) -> None:
        video_layout = dict(width="100%", max_height="360px")
        # The input does not autoplay (the person decides when to watch); the output loops like a GIF.
        self.input_video = widgets.Video(value=b"", format="mp4", autoplay=False, loop=False, controls=True,
                                         layout=widgets.Layout(**video_layout))
        self.input_video.add_class("vid2vid-input")
        self.output_video = widgets.Video(value=b"", format="mp4", autoplay=True, loop=True, controls=True,
                                          layout=widgets.Layout(**video_layout))
        self.output_video.add_class("vid2vid-output")

    def _build_caption(self) -> None:
        self.caption_text = widgets.Textarea(
            placeholder="The caption appears here. Edit it (or type your own), then press Generate.",
            rows=3, layout=widgets.Layout(width="100%"))
        self.caption_text.add_class("vid2vid-caption")
        self.frame_captions = widgets.Dropdown(options=[], description="Frame captions", style=_WIDE,
                                               layout=widgets.Layout(flex="1 1 auto", width="auto"))
        self.frame_captions.add_class("vid2vid-frame-captions")
        self.use_frame_caption = _button("Use this one", "vid2vid-use-frame-caption",
                                         "Copy the chosen frame's caption into the text box")
        self.use_frame_caption.disabled = True

    def _build_actions(self) -> None:
        self.caption_button = _button("Caption", "vid2vid-caption-button", "Describe the loaded video in words",
                                      icon="comment")
        self.generate_button = _button("Generate", "vid2vid-generate", "Make a new video from the caption",
                                       style="primary", icon="play")
        self.cancel_button = _button("Cancel", "vid2vid-cancel", "Stop the run at the next step", style="warning",
                                     icon="stop")
        self.cancel_button.disabled = True
        if not self._runner.threaded:
            # The kernel is busy inside the click handler, so a Cancel click would only arrive after
            # the run: Colab's own stop button (an interrupt) is what stops it.
            self.cancel_button.tooltip = "In Colab, stop a run with the cell's stop button (Runtime > Interrupt)"
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="240px"))
        self.progress.add_class("vid2vid-progress")
        self.progress_label = widgets.Label("")
        self.progress_label.add_class("vid2vid-progress-label")
        self.status = widgets.HTML("")
        self.status.add_class("vid2vid-status")
        self.error = widgets.HTML("")
        self.error.add_class("vid2vid-error")
        self.seed_used = widgets.HTML("")
        self.seed_used.add_class("vid2vid-seed-used")
        self.notes = widgets.HTML("")
        self.notes.add_class("vid2vid-notes")
        # Live preview: the model's current guess of the video, a few frames side by side.
        self.preview_image = widgets.Image(value=b"", format="png", layout=widgets.Layout(
            height="96px", width="auto", object_fit="contain", display="none"))
        self.preview_image.add_class("vid2vid-preview")
        self.preview_label = widgets.HTML("")
        self.preview_label.add_class("vid2vid-preview-label")
        self.variations_count = widgets.Dropdown(options=[2, 3, 4], value=4, description="Variations",
                                                 style=_WIDE, layout=widgets.Layout(width="140px"))
        self.variations_button = _button("Generate variations", "vid2vid-variations-button",
                                         "The same words with several seeds, side by side", icon="th")
        self.variations_button.layout.width = "auto"  # the default 148 px cuts the label off
        self.variations = VariationsGrid(self._use_seed)

    def _build_settings(self, s: GenerationSettings, caption_frames: int, backend: str, model: str,
                        preview_every: int, save_previews: bool) -> None:
        backends = list(BACKENDS) if backend in BACKENDS else [*BACKENDS, backend]
        self.settings_form = self.settings_box = SettingsForm(s, caption_frames, backend, backends, model,
                                                              preview_every, save_previews)
        form = self.settings_form
        # The form's widgets under their old panel names: code and notebooks set panel.steps.value etc.
        self.seed, self.random_seed, self.steps, self.frames = form.seed, form.random_seed, form.steps, form.frames
        self.guidance, self.height, self.width, self.fps = form.guidance, form.height, form.width, form.fps
        self.negative_prompt, self.caption_frames = form.negative_prompt, form.caption_frames
        self.scheduler, self.backend, self.model = form.scheduler, form.backend, form.model
        self.strength, self.start = form.strength, form.start
        self.preview_every, self.save_previews = form.preview_every, form.save_previews

    def _build_history(self) -> None:
        self.history = HistoryList(self.show_run, "vid2vid-history")
        self.past_runs_button = _button("Show past runs", "vid2vid-past-runs",
                                        "List the runs saved in the output folder", icon="history")
        self.past_runs = HistoryList(self.show_run, "vid2vid-past", link_now=False)
        self.log_output = widgets.Output()
        self.details = widgets.Accordion(children=[self.log_output], selected_index=None)
        set_titles(self.details, ["Details (for bug reports)"])

    def _layout(self) -> List[widgets.Widget]:
        def labelled(title: str, video: widgets.Video) -> widgets.VBox:
            return widgets.VBox([widgets.HTML(f"<b>{title}</b>"), video],
                                layout=widgets.Layout(flex="1 1 0", min_width="0", margin="0 4px"))

        return [
            widgets.HBox([self.upload, self.path_text, self.load_button, self.autocaption],
                         layout=widgets.Layout(align_items="center")),
            self.info,
            self.models_notice,
            widgets.HBox([labelled("Your video", self.input_video), labelled("Generated video", self.output_video)],
                         layout=widgets.Layout(width="100%")),
            self.caption_text,
            widgets.HBox([self.frame_captions, self.use_frame_caption]),
            self.settings_form.follow_row,
            widgets.HBox([self.caption_button, self.generate_button, self.cancel_button, self.progress,
                          self.progress_label], layout=widgets.Layout(align_items="center", flex_flow="row wrap")),
            widgets.HBox([self.preview_image, self.preview_label], layout=widgets.Layout(align_items="center")),
            widgets.HBox([self.variations_count, self.variations_button], layout=widgets.Layout(align_items="center")),
            self.variations,
            self.status,
            self.error,
            self.seed_used,
            self.notes,
            self.settings_box,
            widgets.HTML("<b>Runs in this session</b>"),
            self.history,
            self.past_runs_button,
            self.past_runs,
            self.details,
        ]

    def _wire(self) -> None:
        self.upload.observe(self._on_upload, names=upload_trigger_trait())
        self.load_button.on_click(self._click(lambda: self.load(self.path_text.value)))
        self.caption_button.on_click(self._click(self.caption))
        self.generate_button.on_click(self._click(self.generate))
        self.variations_button.on_click(self._click(self.generate_variations))
        self.cancel_button.on_click(lambda _: self.cancel())
        self.use_frame_caption.on_click(lambda _: self._use_frame_caption())
        self.backend.observe(self._on_backend, names="value")
        self.model.observe(self._on_model, names="value")
        self.past_runs_button.on_click(lambda _: self.show_past_runs())

    def _click(self, action: Callable[[], Any]) -> Callable[[Any], None]:
        """A button handler that ignores clicks queued while an inline (Colab) run was busy."""

        def handler(_button: Any) -> None:
            if self._runner.just_finished():
                return
            action()

        return handler

    # -- the pipeline, built on first use ------------------------------------------------------
    @property
    def pipeline(self) -> Vid2VidPipeline:
        """The ``Vid2VidPipeline`` (built now if needed; models still load only on first use)."""
        with self._pipeline_lock:
            if self._pipeline is None:
                # Settings are not passed: every caption and generate call sends the widgets' values.
                # A preset runs on its own backend; an id or folder on the backend chosen beside it.
                preset = catalogue.generator_preset(self.model.value)
                self._pipeline = Vid2VidPipeline.from_options(
                    models=self._models, backend=None if preset is not None else self.backend.value,
                    model=self.model.value, caption_frames=self.caption_frames.value, **self._pipeline_options)
            return self._pipeline

    # -- public actions (the buttons call these; so can code and tests) ------------------------
    def load(self, source: Union[str, os.PathLike, bytes], name: Optional[str] = None) -> bool:
        """Load a video from a path or uploaded bytes, show it, and caption it if autocaption is on.

        Returns False when nothing was started (busy, or an empty path). A bad file shows a message
        and keeps the previous video, caption and outputs.
        """
        if isinstance(source, str):
            source = source.strip()
            if not source:
                self._show_error("Type the path of a video (for example /content/clip.mp4), then press Load.")
                return False
        return self._start("Loading the video...", lambda: self._load(source, name))

    def caption(self) -> bool:
        """Caption the loaded video (in the background outside Colab)."""
        return self._start("Captioning...", self._caption)

    def generate(self) -> bool:
        """Generate a video from the text box as it is now, with the settings shown.

        Returns False when nothing was started (busy, or settings that cannot run: an empty caption,
        a negative seed...); the reason is shown in the error area.
        """
        if not self._ready_to_generate():
            return False
        return self._start("Generating...", self._generate)

    def generate_variations(self) -> bool:
        """Generate the text box's words with as many seeds as ``variations_count`` shows, in a grid.

        Each variation is its own run; "Use this seed" under one puts its seed in Settings.
        """
        if not self._ready_to_generate():
            return False
        return self._start(f"Generating {self.variations_count.value} variations...", self._generate_variations)

    def _ready_to_generate(self) -> bool:
        if self._runner.busy:
            return True  # _start says so
        # Refuse at the click, before a job starts: no busy buttons, no model loading, nothing
        # half-started for a caption of only spaces. The pipeline checks again; this is for the person.
        try:
            settings, _ = self._settings().checked()
            if settings.follows_input and self.loaded is None:
                raise InvalidSettingsError(
                    "“Follow the input video” is below 1, but no video is loaded: load one (upload or path), "
                    "or move the slider to 1 to make the video from the words alone.")
        except InvalidSettingsError as exc:
            self.last_error = exc
            self._show_error(str(exc))
            self._set_status("")
            return False
        return True

    def cancel(self) -> None:
        """Ask the running job to stop at its next step."""
        if self._runner.busy:
            self._cancel.cancel()
            self._set_status("Cancelling at the next step...")

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the current job has finished (tests and scripts); False on timeout."""
        return self._runner.wait(timeout)

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def show_past_runs(self) -> None:
        """List the completed runs saved in the output folder (newest first)."""
        try:
            records = self.pipeline.history()
        except Vid2VidError as exc:
            self._show_error(str(exc))
            return
        shown = records[:50]
        self.past_runs.show(shown, f"<b>Saved in {html.escape(str(self.pipeline.runs_dir))}</b>: {len(records)} run(s)"
                            + (" (newest 50 shown)" if len(records) > len(shown) else ""))

    def show_run(self, record: RunRecord) -> None:
        """Play a saved run's output in the 'Generated video' player."""
        try:
            self.output_video.value = record.output_path.read_bytes()
        except OSError as exc:
            self._show_error(f"Cannot read {record.output_path}: {exc.strerror or exc}. Was the run folder moved?")
            return
        self.seed_used.value = f"Seed used: <b>{record.seed}</b> (run {record.name})"
        self._set_status(f"Showing run {record.name}.")

    # -- the jobs (run by the runner) ----------------------------------------------------------
    def _load(self, source: Union[str, os.PathLike, bytes], name: Optional[str]) -> None:
        pipeline = self.pipeline
        loaded = pipeline.load_video(source, name=name)
        preview = pipeline.preview(loaded)
        data = preview.read_bytes()
        # Only now, with a readable video in hand, replace what is shown.
        self.loaded, self.caption_result = loaded, None
        self.input_video.value = data
        self.info.value = text.info_html(loaded.name, loaded.info, loaded.path)
        if loaded.info.duration > PREVIEW_SECONDS:  # the preview stops early; say so, or it looks cut
            self.info.value += (f" · the player shows the first {text.duration_text(PREVIEW_SECONDS)};"
                                " the caption looks at all of it")
        self.frame_captions.options = []
        self.use_frame_caption.disabled = True
        if self.autocaption.value:
            self._set_status(f"Loaded {loaded.name}. Captioning...")
            self._caption()
        else:
            self._set_status(f"Loaded {loaded.name}. Press Caption, or type a caption and press Generate.")

    def _caption(self) -> None:
        if self.loaded is None:
            raise Vid2VidError("Load a video first (upload one or type its path), then press Caption.")
        result = self.pipeline.caption(self.loaded, num_frames=self.caption_frames.value,
                                       on_progress=self._on_progress, cancel=self._cancel)
        self.caption_result = result
        self.caption_text.value = result.caption.text
        per_frame = list(getattr(result.caption, "per_frame", []) or [])
        times = list(getattr(result.caption, "timestamps", []) or [])
        options = [(f"All frames: {result.caption.text}", -1)]
        for i, words in enumerate(per_frame):
            when = text.timestamp_text(times[i]) if i < len(times) else f"frame {i + 1}"
            options.append((f"{when}  {words}", i))
        self.frame_captions.options = options
        self.frame_captions.value = -1  # ipywidgets 8 selects nothing when options change
        self.use_frame_caption.disabled = False
        took = result.timings.get("total")
        self.progress_label.value = f"Caption ready in {text.duration_text(took)}" if took else "Caption ready"
        by = text.captioner_text(self.pipeline.captioner)  # which captioner wrote it: there is a choice
        self._set_status(f"Caption ready{f' in {text.duration_text(took)}' if took else ''}, by "
                         f"{html.escape(by)}. Edit it if you like, then press Generate.")

    def _generate(self) -> None:
        settings = self._settings()
        caption = self.caption_result.caption if self.caption_result is not None else None
        result = self.pipeline.generate(settings.prompt, settings, source=self.loaded, caption=caption,
                                        on_progress=self._on_progress, cancel=self._cancel, **self._preview_options())
        self.output_video.value = result.video_path.read_bytes()
        self.settings_form.keep_seed(result.seed)
        self.seed_used.value = f"Seed used: <b>{result.seed}</b>"
        self._show_finished([result], f"Saved in {result.run_dir}.")

    def _generate_variations(self) -> None:
        settings = self._settings()
        caption = self.caption_result.caption if self.caption_result is not None else None
        results = self.pipeline.variations(settings.prompt, int(self.variations_count.value), settings,
                                           source=self.loaded, caption=caption, on_progress=self._on_progress,
                                           cancel=self._cancel, **self._preview_options())
        self.output_video.value = results[0].video_path.read_bytes()
        seeds = ", ".join(str(r.seed) for r in results)
        self.seed_used.value = f"Seeds used: <b>{seeds}</b>"
        self.variations.show(results, f"<b>{len(results)} variations</b> of “{html.escape(settings.prompt)}”: "
                                      "press “Use this seed” under the one you like to keep its seed")
        self._show_finished(results, f"Saved in {len(results)} run folders under {self.pipeline.runs_dir}.")

    def _show_finished(self, results: List[Any], saved: str) -> None:
        self.notes.value = text.notes_html(dict.fromkeys(n for r in results for n in r.notes))
        for result in results:
            self.runs.append(result)
            self.history.add(result.record)
        self.last_result = results[-1]
        took = text.duration_text(max(r.timings.get("total", 0.0) for r in results))
        self.progress_label.value = f"Finished in {took}"
        self._set_status(f"Done in {took}. {saved}")

    def _preview_options(self) -> Dict[str, Any]:
        every = int(self.preview_every.value)
        self.preview_image.layout.display = "none"  # until this run's first preview: no stale picture
        self.preview_label.value = ""
        return {"on_preview": self._on_preview if every else None, "preview_every": every,
                "save_previews": bool(self.save_previews.value) and every > 0}

    def _on_preview(self, preview: Preview) -> None:
        # Sent from the worker thread (or from inside the click handler in Colab): both render.
        self.preview_image.value = png_bytes(preview.image)
        self.preview_image.layout.display = None
        self.preview_label.value = text.preview_text(preview)

    def _use_seed(self, seed: int) -> None:
        self.settings_form.use_seed(seed)
        self._set_status(f"Seed {seed} is now in Settings (random is off): Generate makes that video again.")

    # -- helpers -------------------------------------------------------------------------------
    def _settings(self) -> GenerationSettings:
        return self.settings_form.value.replace(prompt=self.caption_text.value)

    def _start(self, status: str, work: Callable[[], None]) -> bool:
        if self._runner.busy:
            self._set_status("A run is in progress: wait for it to finish, or press Cancel.")
            return False
        self._cancel.reset()
        self._show_error("")
        self.notes.value = ""
        self._set_running(True)
        if not self._runner.threaded:
            status += " (to stop: the cell's stop button, or Runtime > Interrupt execution)"
        self._set_status(status)

        def job() -> None:
            try:
                work()
            except (GenerationCancelled, KeyboardInterrupt):  # KeyboardInterrupt: Colab's stop button
                self.progress.bar_style = "warning"
                self._set_status("Cancelled: nothing was saved. Everything else is as it was.")
            except Vid2VidError as exc:
                self.last_error = exc
                self._show_error(str(exc))
                self._set_status("")
            except Exception as exc:  # a bug: one readable line here, the traceback in Details
                self.last_error = exc
                self._show_error(f"Something went wrong: {type(exc).__name__}: {exc}")
                self.log_output.append_stderr(traceback.format_exc())
                self._set_status("")
            finally:
                self._set_running(False)

        return self._runner.start(job)

    def _set_running(self, running: bool) -> None:
        for control in (self.upload, self.path_text, self.load_button, self.caption_button, self.generate_button,
                        self.backend, self.model, self.past_runs_button, self.variations_button):
            control.disabled = running
        self.cancel_button.disabled = not (running and self._runner.threaded)
        if running:
            self.progress.bar_style = ""

    def _on_progress(self, progress: Progress) -> None:
        with self.progress.hold_sync():  # one message per step: max and value together
            self.progress.value = 0
            self.progress.max = max(1, progress.total)
            self.progress.value = min(progress.step, self.progress.max)
        self.progress_label.value = text.progress_text(progress)

    def _set_status(self, message: str) -> None:
        self.status.value = message

    def _show_error(self, message: str) -> None:
        self.error.value = text.error_html(message)

    def _on_upload(self, change: Dict[str, Any]) -> None:
        files = parse_upload_value(self.upload.value)
        if not files:
            return
        upload = files[0]
        clear_upload(self.upload)  # saved to disk by load(); no need to hold a second copy in memory
        self.load(upload.content, name=upload.name)

    def _use_frame_caption(self) -> None:
        if self.caption_result is None or self.frame_captions.value is None:
            return
        index = self.frame_captions.value
        caption = self.caption_result.caption
        self.caption_text.value = caption.text if index < 0 else caption.per_frame[index]

    def _on_backend(self, change: Dict[str, Any]) -> None:
        if self._reverting_backend or self._pipeline is None:
            return  # a panel without a pipeline yet builds it with the chosen backend
        try:
            if self._runner.busy:
                raise Vid2VidError("Wait for the run to finish before changing the backend.")
            self._pipeline.set_backend(change["new"])
            self._set_status(f"Backend: {change['new']} (its model loads on the next Generate).")
            if self._pipeline.preset is not None:
                self._show_model(self._pipeline.preset.name)
        except Exception as exc:
            self._show_error(str(exc) if isinstance(exc, Vid2VidError)
                             else f"Something went wrong: {type(exc).__name__}: {exc}")
            self._reverting_backend = True
            try:
                self.backend.value = change["old"]
            finally:
                self._reverting_backend = False


    def _on_model(self, change: Dict[str, Any]) -> None:
        """Another model chosen: switch the pipeline's generator (the old one stays resident) and show
        the new model's default settings, keeping those given when the panel was made."""
        if self._syncing_model:
            return
        preset = catalogue.generator_preset(change["new"])
        try:
            if self._runner.busy:
                raise Vid2VidError("Wait for the run to finish before changing the model.")
            if self._pipeline is not None:
                self._pipeline.set_model(change["new"], None if preset is not None else self.backend.value)
        except Exception as exc:
            self._show_error(str(exc) if isinstance(exc, Vid2VidError)
                             else f"Something went wrong: {type(exc).__name__}: {exc}")
            self._show_model(change["old"], defaults=False)
            return
        self.settings_form.show_defaults(catalogue.preset_settings(preset, self._given_settings))
        if preset is not None and self.backend.value != preset.backend:
            self._syncing_model = self._reverting_backend = True  # the backend follows; no second switch
            try:
                self.backend.value = preset.backend
            finally:
                self._syncing_model = self._reverting_backend = False
        self._set_status(f"Model: {change['new']} (it loads on the next Generate; models loaded before stay "
                         "in memory until vid2vid_widgets.unload()).")

    def _show_model(self, name: str, defaults: bool = True) -> None:
        """Show ``name`` in the Model dropdown without switching anything (the pipeline already has it)."""
        self._syncing_model = True
        try:
            if name not in {value for _, value in self.model.options}:
                self.model.options = model_options(name)
            self.model.value = name
            if defaults:
                    self.settings_form.show_defaults(catalogue.preset_settings(catalogue.generator_preset(name),
                                                                           self._given_settings))
        finally:
            self._syncing_model = False


def _model_choice(pipeline: Optional[Vid2VidPipeline], options: Dict[str, Any]) -> Tuple[str, Any, str]:
    """(model shown, its preset or None, backend shown) for a new panel."""
    if pipeline is not None:
        preset = pipeline.preset
        model = preset.name if preset is not None else str(getattr(pipeline.generator, "model_id", "custom"))
        return model, preset, pipeline.backend
    generator = options.get("generator")
    named = generator if isinstance(generator, str) and generator not in BACKENDS and \
        catalogue.generator_preset(generator) else None
    backend = options.get("backend") or (generator if isinstance(generator, str) and not named else None)
    backend, model_id, preset = catalogue.resolve_generator(
        options.get("model") or options.get("generator_model") or named, backend)
    return (preset.name if preset is not None else str(model_id)), preset, backend


__all__ = ["Vid2VidPanel", "VIDEO_ACCEPT"]
