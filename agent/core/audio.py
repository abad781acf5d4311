"""The audio contract: named constants with units; derived values computed and checked.

Everything that touches audio (synthesis, features, the agent's ring buffer,
the bundle manifest) reads these names instead of repeating literals.
"""

from __future__ import annotations

import numpy as np

from agent.core.errors import AudioFormatError

#: Sample rate of rendered datasets and of the spatial branch (keeps pinna cues > 8 kHz).
SAMPLE_RATE_HZ = 48_000
#: Lowest rate any dataset clip may have (dataset contract).
MIN_SAMPLE_RATE_HZ = 16_000
#: Rate of the semantic (mono) branch.
SEMANTIC_SAMPLE_RATE_HZ = 16_000
#: Channel order of every binaural signal in binaura: index 0 is the left ear.
CHANNELS = ("L", "R")
N_CHANNELS = len(CHANNELS)
#: Default clip length of synthesized scenes.
CLIP_DURATION_S = 5.0
CLIP_SAMPLES = int(round(CLIP_DURATION_S * SAMPLE_RATE_HZ))
#: Speed of sound used by every geometric computation.
SPEED_OF_SOUND_M_S = 343.0
#: Ear half-distance of the reference (KEMAR-like) head, used by classical models.
HEAD_RADIUS_M = 0.0875

assert CLIP_SAMPLES == 240_000


def check_binaural(audio: np.ndarray, sample_rate_hz: int, where: str = "audio") -> np.ndarray:
    """Validate a binaural signal; return it as float32 of shape (2, T).

    Raises AudioFormatError naming what was expected.
    """
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] != N_CHANNELS:
        raise AudioFormatError(
            f"{where}: expected binaural audio of shape (2, T) with channels {CHANNELS}, "
            f"got shape {audio.shape}"
        )
    if sample_rate_hz < MIN_SAMPLE_RATE_HZ:
        raise AudioFormatError(
            f"{where}: sample rate {sample_rate_hz} Hz is below the minimum "
            f"{MIN_SAMPLE_RATE_HZ} Hz"
        )
    if not np.all(np.isfinite(audio)):
        raise AudioFormatError(f"{where}: contains NaN or infinite samples")
    return audio.astype(np.float32, copy=False)


def resample_to(audio: np.ndarray, rate_hz: int, target_hz: int) -> np.ndarray:
    """Polyphase resampling along the last axis (identity when the rates agree)."""
    if rate_hz == target_hz:
        return audio
    from math import gcd  # noqa: PLC0415

    from scipy.signal import resample_poly  # noqa: PLC0415

    g = gcd(int(rate_hz), int(target_hz))
    return resample_poly(np.asarray(audio, np.float64), target_hz // g, rate_hz // g, axis=-1).astype(np.float32)
