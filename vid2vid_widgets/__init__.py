"""vid2vid-widgets: caption a video, edit the words, generate a new video, in a notebook."""

from __future__ import annotations

__version__ = "0.1.0"
