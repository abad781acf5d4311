"""The one small predictor interface every model and baseline implements.

`binaura bench localize` and `binaura bench qa` take any object with these
methods: the classical baselines, the trained encoders, the audio-language
model. Only oracles may read `Clip.truth`; the bench hands it to every model,
so a test in tests/ checks that non-oracle baselines ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from agent.core.scene import QAItem, Scene, SourceEstimate

#: Clips longer than this are heard in bounded chunks through the streaming path: the bench
#: hands a model that can read files (`reads_files`) the path instead of the loaded audio.
LONG_CLIP_S = 60.0


@dataclass
class Clip:
    """One clip as a model sees it. audio: (2, T) float32, channels (L, R); None when the
    model does not need it, or (for a long clip) when `path` names the wav to read instead."""

    scene_id: str
    audio: np.ndarray | None
    sample_rate_hz: int
    truth: Scene | None = None
    path: Path | None = None


@runtime_checkable
class Localizer(Protocol):
    name: str
    needs_audio: bool

    def localize(self, clip: Clip) -> list[SourceEstimate]:
        """Sources heard in the clip: direction (deg), optional distance (m) and class."""
        ...


@runtime_checkable
class Answerer(Protocol):
    name: str
    needs_audio: bool

    def answer(self, clip: Clip, item: QAItem) -> str:
        """An answer to item: an option letter or text, or an open answer (deg, m, class)."""
        ...
