"""The panel's run lists: one row per run with Show, a download link and what made it.

``HistoryList`` is a VBox of rows (its ``children`` are the rows, newest first). The panel keeps
two: the runs made in this session, and the runs saved in the output folder ("Show past runs").
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable, List, Sequence

import ipywidgets as widgets

from . import _panel_text as text
from ._compat import in_colab
from .runs import RunRecord


class HistoryList(widgets.VBox):
    """Rows of runs. ``on_show(record)`` is called when a row's Show button is pressed.

    ``link_now=False`` (past runs, possibly dozens) makes each download link on request: a link
    carries the whole video, and listing 50 runs should not send 50 videos to the browser.
    """

    def __init__(self, on_show: Callable[[RunRecord], None], css_class: str, link_now: bool = True) -> None:
        super().__init__([])
        self._on_show = on_show
        self._link_now = link_now
        self.add_class(css_class)

    def add(self, record: RunRecord) -> None:
        """Put one run at the top."""
        self.children = [self._row(record)] + list(self.children)

    def show(self, records: Sequence[RunRecord], header: str) -> None:
        """Replace the list with ``records`` under a header line (HTML)."""
        self.children = [widgets.HTML(header)] + [self._row(r) for r in records]

    def _row(self, record: RunRecord) -> widgets.HBox:
        show = widgets.Button(description="Show", tooltip="Play this run again", layout=widgets.Layout(width="70px"))
        show.on_click(lambda _: self._on_show(record))
        if self._link_now:
            link: widgets.Widget = widgets.HTML(text.download_html(record.output_path))
        else:
            link = widgets.Button(description="Download link", layout=widgets.Layout(width="auto"))

            def make_link(button: widgets.Button) -> None:
                children = list(row.children)
                children[children.index(button)] = widgets.HTML(text.download_html(record.output_path))
                row.children = children

            link.on_click(make_link)
        parts: List[widgets.Widget] = [show, link]
        if in_colab():
            download = widgets.Button(description="Save to computer", layout=widgets.Layout(width="auto"))
            download.on_click(lambda _: _colab_download(record.output_path))
            parts.append(download)
        # Escaped: the prompt is free text (typed, or read back from any run.json in the folder) and
        # must show as words, never run as HTML in the notebook.
        parts.append(widgets.HTML(html.escape(f"{record.created} · {text.run_summary(record.data)}", quote=False)))
        row = widgets.HBox(parts, layout=widgets.Layout(align_items="center"))
        row.add_class("vid2vid-history-row")
        return row


def _colab_download(path: Path) -> None:
    from google.colab import files  # only reached in Colab

    files.download(str(path))


__all__ = ["HistoryList"]
