"""The panel's grid of variations: one small looping video per seed, each with "Use this seed".

Widgets only: the panel gives it finished runs and what to do when a seed is picked.
"""

from __future__ import annotations

from typing import Any, Callable, List, Sequence

import ipywidgets as widgets


class VariationsGrid(widgets.VBox):
    """Up to four generated videos side by side; ``show(runs)`` replaces what is shown."""

    def __init__(self, on_use_seed: Callable[[int], None], css: str = "vid2vid-variations") -> None:
        super().__init__(children=[])
        self.add_class(css)
        self._on_use_seed = on_use_seed
        self.buttons: List[widgets.Button] = []

    def show(self, runs: Sequence[Any], title: str = "") -> None:
        """One cell per run (a ``RunResult``): the video, its seed, and a button that keeps that seed."""
        cells, self.buttons = [], []
        for run in runs:
            player = widgets.Video(value=run.video_path.read_bytes(), format="mp4", autoplay=True, loop=True,
                                   controls=True, layout=widgets.Layout(width="100%"))
            button = widgets.Button(description="Use this seed", icon="check",
                                    tooltip=f"Put seed {run.seed} in Settings (random off): Generate repeats this video")
            button.add_class("vid2vid-use-seed")
            button.on_click(lambda _b, seed=run.seed: self._on_use_seed(seed))
            self.buttons.append(button)
            label = widgets.HTML(f"seed <b>{run.seed}</b>")
            cells.append(widgets.VBox([player, widgets.HBox([label, button], layout=widgets.Layout(
                align_items="center", justify_content="space-between"))], layout=widgets.Layout(min_width="0")))
        grid = widgets.GridBox(cells, layout=widgets.Layout(
            grid_template_columns=f"repeat({max(1, len(cells))}, minmax(0, 1fr))", grid_gap="6px", width="100%"))
        self.children = ([widgets.HTML(title)] if title else []) + ([grid] if cells else [])

    def clear(self) -> None:
        self.children, self.buttons = [], []


__all__ = ["VariationsGrid"]
