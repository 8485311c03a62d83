"""What every text-to-video backend shares: the settings, the result, and the ``Generator`` protocol.

A backend turns ``GenerationSettings`` into uint8 frames. It never writes files and never touches
widgets: encoding is ``video.encode_mp4``'s job, saving is ``runs.RunStore``'s.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol, Tuple, runtime_checkable

import numpy as np

from ..errors import InvalidSettingsError
from ..progress import CancelToken, ProgressCallback

SCHEDULERS = ("dpm++", "ddim")
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that decides what a generated video looks like. Stored in every run.json."""

    prompt: str = ""
    negative_prompt: str = ""
    seed: Optional[int] = None  # None: pick one at random and record it
    num_frames: int = 16
    num_steps: int = 25
    guidance_scale: float = 9.0
    height: int = 256
    width: int = 256
    fps: int = 8
    scheduler: str = "dpm++"

    def replace(self, **changes: Any) -> "GenerationSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "GenerationSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def checked(self) -> Tuple["GenerationSettings", List[str]]:
        """Return settings that a backend can run, plus notices of what was corrected.

        Refuses (``InvalidSettingsError``) what has no sensible correction: an empty prompt, zero
        frames or steps, a negative seed. Corrects what has one: sizes are rounded to a multiple of 8
        (the VAE's scale factor), and a missing seed is drawn at random so the run can be repeated.
        """
        prompt = (self.prompt or "").strip()
        if not prompt:
            raise InvalidSettingsError(
                "The caption is empty: type what the new video should show, then press Generate."
            )
        for name, value, low in (("frames", self.num_frames, 1), ("steps", self.num_steps, 1), ("fps", self.fps, 1)):
            if int(value) != value or value < low:
                raise InvalidSettingsError(f"{name} must be a whole number of at least {low} (got {value!r}).")
        if self.guidance_scale < 0:
            raise InvalidSettingsError(
                f"guidance must be 0 or more (got {self.guidance_scale}); 9 is the model's usual value."
            )
        if self.scheduler not in SCHEDULERS:
            raise InvalidSettingsError(
                f"Unknown scheduler {self.scheduler!r}: choose one of {', '.join(SCHEDULERS)}."
            )
        if self.seed is not None and (int(self.seed) != self.seed or not 0 <= self.seed <= MAX_SEED):
            raise InvalidSettingsError(
                f"The seed must be a whole number from 0 to {MAX_SEED} (got {self.seed!r}); "
                "leave it empty for a random one."
            )
        notices: List[str] = []
        sizes = {}
        for name in ("height", "width"):
            value = int(getattr(self, name))
            rounded = max(8, int(value / 8 + 0.5) * 8)  # half up: 100 -> 104, not banker's 96
            if rounded != value:
                notices.append(f"{name} {value} is not a multiple of 8; using {rounded}.")
            sizes[name] = rounded
        seed = self.seed if self.seed is not None else secrets.randbelow(MAX_SEED + 1)
        fixed = self.replace(prompt=prompt, seed=int(seed), num_frames=int(self.num_frames),
                             num_steps=int(self.num_steps), fps=int(self.fps), **sizes)
        return fixed, notices


@dataclass
class GeneratedFrames:
    """A backend's result: frames plus what produced them."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    settings: GenerationSettings  # with the seed actually used
    notes: List[str] = field(default_factory=list)  # settings corrected or not honoured, prompt truncated...
    timings: Dict[str, float] = field(default_factory=dict)  # seconds: "load", "encode_prompt", "denoise", "decode"
    model: Dict[str, Any] = field(default_factory=dict)  # backend, model_id, revision, device, dtype


@runtime_checkable
class Generator(Protocol):
    """A text-to-video backend. Loading is lazy and goes through ``models.REGISTRY``."""

    backend: str
    model_id: str

    def load(self) -> None:
        """Load (or fetch from the registry) every component; cheap when already resident."""

    def describe(self) -> Dict[str, Any]:
        """Model ids, revisions, device and dtype, for run.json."""

    def generate(
        self,
        settings: GenerationSettings,
        *,
        on_progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> GeneratedFrames:
        """Run ``settings`` (already ``checked()``) and return uint8 frames."""


__all__ = ["GenerationSettings", "GeneratedFrames", "Generator", "SCHEDULERS", "MAX_SEED"]
