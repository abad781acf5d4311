"""What an exported encoder hears in a clip: clip -> its decoded sources with their time spans.

The program-aided answerers (agent/answer/programs.py) run their programs on this; so do the
perception bound and the mono baseline (export/registry.py). Sources are
agent.core.scene.SourceLabel (azimuth and elevation in degrees, the coordinate convention of
agent.core.geometry; distance in metres; onset and offset in seconds from the clip's start).
"""

from __future__ import annotations

import os

import numpy as np

from agent.core.predictor import Clip
from agent.core.scene import SourceLabel
from agent.core.seld import heard_sources
from agent.localize.encoder import EncoderRuntime


class EncoderHearing:
    """callable(clip) -> the sources `runtime` hears in the clip (one pass over the whole clip).
    mono: the encoder hears the L+R average on both ears (the paper's mono baseline)."""

    def __init__(self, runtime: EncoderRuntime, mono: bool = False):
        self.runtime = runtime
        self.mono = mono

    @property
    def sample_rate_hz(self) -> int:
        """The rate (Hz) the encoder's features are computed at; other rates are resampled."""
        return self.runtime.features.sample_rate_hz

    def __call__(self, clip: Clip) -> list[SourceLabel]:
        rt = self.runtime
        audio = np.repeat(clip.audio.mean(axis=0, keepdims=True), 2, axis=0) if self.mono else clip.audio
        f = rt.run_audio(audio, clip.sample_rate_hz, clip.scene_id)
        return heard_sources(f.accdoa, f.log_distance, rt.slot_labels, rt.output_rate_hz, rt.decode)


def encoder_hearing(path: str | os.PathLike | None = None, mono: bool = False, threads: int = 1) -> EncoderHearing:
    """The hearing of the exported encoder folder at `path` (None: the shipped one),
    checksums verified by EncoderRuntime; threads: ONNX Runtime's intra-op threads."""
    return EncoderHearing(EncoderRuntime(path, threads=threads), mono)
