"""The words and small HTML snippets the panel shows: plain functions of plain data, easy to test."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Iterable, Optional

from .progress import Progress

# What each pipeline stage is called on screen.
STAGE_NAMES = {
    "download": "Downloading the model",
    "load": "Loading the model",
    "caption": "Captioning frames",
    "denoise": "Generating",
    "decode": "Decoding frames",
    "encode": "Writing the video",
}
# Above this a data URI would push the whole file through the widget channel again (and Jupyter
# drops websocket messages over 10 MiB): show the path instead.
MAX_DATA_URI_BYTES = 8 * 1024 * 1024
ERROR_COLOUR = "#b00020"


def duration_text(seconds: Optional[float]) -> str:
    """``75.2`` -> ``"1:15"``; short times keep a decimal (``"4.2 s"``) because tiny runs are quick."""
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def size_text(num_bytes: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "bytes" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return ""  # unreachable; keeps type checkers calm


def progress_text(progress: Progress) -> str:
    """``"Generating: step 3 of 25 · 0:12 so far · about 1:28 left"``."""
    stage = STAGE_NAMES.get(progress.stage, progress.stage.capitalize())
    if progress.stage == "download":
        return download_text(progress, stage)
    text = f"{stage}: {progress.step} of {progress.total} · {duration_text(progress.elapsed)} so far"
    if progress.remaining is not None and progress.step < progress.total:
        text += f" · about {duration_text(progress.remaining)} left"
    return text


def preview_text(preview: Any) -> str:
    """The words beside the live preview: which step it shows, and what it is."""
    return (f"<small>The model's current guess of the video after step {preview.step} of {preview.total}"
            "<br>(a few frames, cheap colours: the final video is sharper)</small>")


def download_text(progress: Progress, stage: str = STAGE_NAMES["download"]) -> str:
    """``"Downloading the model: 120.5 MB of 1.0 GB · 12.3 MB/s · about 1:10 left"`` (step and total in bytes)."""
    text = f"{stage}: {size_text(progress.step)} of {size_text(progress.total)}"
    if progress.rate is not None:
        text += f" · {size_text(int(progress.rate))}/s"
    if progress.remaining is not None and progress.step < progress.total:
        text += f" · about {duration_text(progress.remaining)} left"
    return text


def captioner_text(captioner: Any) -> str:
    """Who wrote the caption: ``"SmolVLM2 (HuggingFaceTB/SmolVLM2-500M-Video-Instruct)"``.

    A local folder shows its last two path parts: the tiny models' long temporary paths say nothing.
    """
    label = getattr(captioner, "label", None) or type(captioner).__name__
    model_id = str(getattr(captioner, "model_id", "") or "")
    if len(Path(model_id).parts) > 2:
        model_id = "/".join(Path(model_id).parts[-2:])
    return f"{label} ({model_id})" if model_id else str(label)


def info_html(name: str, info: Any, path: Path) -> str:
    """The line under the inputs: name, file size, then size/duration/fps/codec from ``VideoInfo``."""
    try:
        file_size = size_text(path.stat().st_size)
    except OSError:
        file_size = "?"
    summary = info.summary() if hasattr(info, "summary") else ""
    return f"<b>{html.escape(name)}</b> · {file_size} · {html.escape(summary)}"


def models_notice_html(models: Optional[str], pipeline: Any = None) -> str:
    """A visible notice when the videos will be noise (tiny models) or slow (real models on a CPU)."""
    device = getattr(pipeline, "device", None)
    if models == "tiny":
        message = ("Tiny random models: every step runs for real and quickly, but the captions are random "
                   "words and the videos coloured noise. For real results use a GPU (in Colab: Runtime &gt; "
                   "Change runtime type &gt; T4 GPU) and <code>Vid2VidPanel()</code> without "
                   "<code>models=\"tiny\"</code>.")
    else:
        if device is None:
            from ._compat import cuda_available

            device = "cuda" if cuda_available() else "cpu"
        if str(device).startswith("cuda"):
            return ""
        message = ("No GPU: the real models run on the CPU and take minutes per video (about a minute per "
                   "step at 16 frames of 256x256). Lower the steps, frames and size in Settings, or use "
                   "<code>Vid2VidPanel(models=\"tiny\")</code> for a quick try.")
    return (f'<div style="background:#fff8e1;border-left:4px solid #f9a825;padding:4px 8px;margin:2px 0">'
            f"{message}</div>")


def error_html(message: str) -> str:
    if not message:
        return ""
    return f'<span style="color:{ERROR_COLOUR}">{html.escape(message)}</span>'


def notes_html(notes: Iterable[str]) -> str:
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"<b>Notes on this run:</b><ul style='margin:0'>{items}</ul>" if items else ""


def timestamp_text(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(float(seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def run_summary(data: dict) -> str:
    """One history line from a run.json dict: prompt, seed and the settings that matter."""
    s = data.get("settings", {})
    prompt = s.get("prompt", "")
    shown = prompt if len(prompt) <= 80 else prompt[:77] + "..."
    summary = (f"“{shown}” · seed {s.get('seed')} · {s.get('num_frames')} frames · {s.get('num_steps')} steps"
               f" · {s.get('width')}x{s.get('height')} · guidance {s.get('guidance_scale')}")
    if s.get("strength", 1.0) < 1.0:
        summary += f" · follows the input at {s['strength']:g} from {s.get('start', 0):g} s"
    return summary


def download_html(path: Path, label: str = "Download") -> str:
    """An anchor that saves the file from the browser (a data URI), or the path when too large."""
    try:
        size = path.stat().st_size
    except OSError:
        return f"<i>{html.escape(str(path))} is missing</i>"
    if size > MAX_DATA_URI_BYTES:
        return f"saved at <code>{html.escape(str(path))}</code>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    filename = html.escape(f"{path.parent.name}.mp4", quote=True)
    return f'<a download="{filename}" href="data:video/mp4;base64,{data}" target="_blank">{html.escape(label)}</a>'


__all__ = ["STAGE_NAMES", "duration_text", "size_text", "progress_text", "download_text", "captioner_text",
           "info_html", "error_html", "notes_html", "timestamp_text", "preview_text", "run_summary", "download_html"]
