"""The seam between the synthesizer's sources and how their material is packed.

Sources and heads (hrtf.py, sounds.py, speech.py) read the system (slab's KEMAR, the
freedesktop sound theme, the TTS programs) unless a packed stand-in is active; they ask
``packed()`` and know nothing of what packs it. A packer (kit.py) registers a resolver
that returns its stand-in when one is configured (BINAURA_SYNTH_KIT), so the kit depends
on the sources (to pack them) and never the other way round (issue 22, housekeeping).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np


class PackedAssets(Protocol):
    """What a packed kit stands in for."""

    def kemar_raw(self) -> tuple[np.ndarray, int, np.ndarray]:
        """(HRIRs (N, 2, taps) float64, rate_hz, sources (N, 2) slab's vertical-polar az/el)."""

    def theme_file(self, name: str) -> Path:
        """The path of a freedesktop sound-theme file."""

    def utterance(self, engine: str, voice: str, key: str, rate_hz: int) -> np.ndarray:
        """A pooled utterance of (engine, voice) for the request hashed as key (hex)."""


_RESOLVERS: list[Callable[[], PackedAssets | None]] = []


def register(resolver: Callable[[], PackedAssets | None]) -> None:
    """Add a resolver (once); the first that returns a stand-in wins."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)


def packed() -> PackedAssets | None:
    """The active packed stand-in, or None to read the system."""
    for resolve in _RESOLVERS:
        found = resolve()
        if found is not None:
            return found
    return None
