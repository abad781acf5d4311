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


class StreamResampler:
    """`resample_to` over a stream: audio in chunks of any size, the same samples out as one
    pass over the whole signal (to float rounding).

    The polyphase filter of `scipy.signal.resample_poly` reaches `margin` input samples either
    side of an output sample, so each push resamples the new input with that much context
    and keeps only outputs whose inputs have all arrived; segment starts are multiples of
    `down`, which keeps every segment's output grid on the whole signal's. Holds at most a
    chunk plus 2 x margin samples (an hour of audio is resampled in bounded memory)."""

    def __init__(self, rate_hz: int, target_hz: int):
        from math import ceil, gcd  # noqa: PLC0415

        g = gcd(int(rate_hz), int(target_hz))
        self.up, self.down = int(target_hz) // g, int(rate_hz) // g
        half_len = 10 * max(self.up, self.down)  # resample_poly's default filter, on the upsampled grid
        self.margin = ceil((half_len / self.up + 2) / self.down) * self.down
        self.reset()

    def reset(self) -> None:
        self._buf: np.ndarray | None = None  # (C, n) float64, input from sample self._buf_start on
        self._shape: tuple[int, ...] = (0,)
        self._buf_start = 0
        self._next = 0  # first input sample whose output is still to come (a multiple of down)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """(C, n) input -> (C, m) output, m >= 0."""
        chunk = np.asarray(chunk, np.float64)
        self._shape = chunk.shape[:-1]
        if self.up == self.down:
            return chunk.astype(np.float32)
        self._buf = chunk if self._buf is None else np.concatenate([self._buf, chunk], axis=-1)
        end = self._buf_start + self._buf.shape[-1]
        done = (end - self.margin) // self.down * self.down  # outputs before it are final
        if done <= self._next:
            return np.zeros((*chunk.shape[:-1], 0), np.float32)
        return self._emit(done, done + self.margin)

    def flush(self) -> np.ndarray:
        """The rest of the output, as if the signal ended here; then reset()."""
        if self._buf is None:  # nothing held (nothing pushed, or equal rates)
            return np.zeros((*self._shape, 0), np.float32)
        end = self._buf_start + self._buf.shape[-1]
        out = self._emit(end, end, final=True)
        self.reset()
        return out

    def _emit(self, done: int, seg_end: int, final: bool = False) -> np.ndarray:
        from scipy.signal import resample_poly  # noqa: PLC0415

        seg_start = max(0, self._next - self.margin)
        seg = self._buf[..., seg_start - self._buf_start:seg_end - self._buf_start]
        y = resample_poly(seg, self.up, self.down, axis=-1)
        j0 = (self._next - seg_start) * self.up // self.down
        j1 = y.shape[-1] if final else (done - seg_start) * self.up // self.down
        self._next = done
        keep = max(0, done - self.margin) - self._buf_start
        if keep > 0:
            self._buf = self._buf[..., keep:]
            self._buf_start += keep
        return y[..., j0:j1].astype(np.float32)
