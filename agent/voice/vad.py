"""Voice activity detection: the silero VAD ONNX model run by onnxruntime directly (no torch).

The model (silero-vad 6.x) is a recurrent network over 512-sample frames at 16 kHz (32 ms).
Per call it takes `input` (1, 64 + 512): the last 64 samples of the previous frame (its
context) followed by the new frame, `state` (2, 1, 128) float32 carried between calls, and `sr`
(int64 scalar, 16000); it returns the speech probability (1, 1) and the next state. This is
what silero's own `OnnxWrapper` does with torch tensors.

Segments come from a hysteresis state machine over the probabilities (silero's
`get_speech_timestamps` rules): speech starts at a frame >= `threshold`, and ends once the
probability has stayed below `neg_threshold` for `min_silence_s`; segments shorter than
`min_speech_s` are dropped and long ones are split at `max_speech_s` (one Whisper window).
Silero rejects bird song and music where webrtcvad does not (REAL_WORLD.md), which is why it
gates the speech recogniser.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.core.audio import resample_to
from agent.core.errors import ConfigError

VAD_RATE_HZ = 16_000
FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
FRAME_S = FRAME_SAMPLES / VAD_RATE_HZ
STATE_SHAPE = (2, 1, 128)

assert FRAME_S == 0.032


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech on the VAD's clock (seconds since the first sample pushed)."""

    t_start_s: float
    t_end_s: float

    @property
    def duration_s(self) -> float:
        return self.t_end_s - self.t_start_s


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5  # speech starts at a frame with probability >= this
    neg_threshold: float = 0.35  # ... and may end once it falls below this (silero: threshold - 0.15)
    min_speech_s: float = 0.25  # shorter segments are dropped (clicks, a cough)
    min_silence_s: float = 0.4  # a pause this long ends a question; word gaps are shorter
    speech_pad_s: float = 0.1  # added both sides so Whisper hears the first and last phoneme
    max_speech_s: float = 28.0  # split longer speech: Whisper sees 30 s at a time

    def __post_init__(self):
        problems = []
        if not 0.0 < self.neg_threshold <= self.threshold < 1.0:
            problems.append(f"need 0 < neg_threshold <= threshold < 1, got "
                            f"{self.neg_threshold}, {self.threshold}")
        for name in ("min_speech_s", "min_silence_s", "speech_pad_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_speech_s <= self.min_speech_s:
            problems.append(f"max_speech_s ({self.max_speech_s}) must exceed min_speech_s")
        if problems:
            raise ConfigError(problems, "VadConfig")


class Vad:
    """Streaming VAD: `push` 16 kHz mono chunks of any size, get the segments that ended.

    Results do not depend on the chunk size (frames are cut from the stream, not the chunks).
    A segment is reported once its end is certain, i.e. `min_silence_s` after the speech."""

    def __init__(self, model_path: str | Path | None = None, config: VadConfig | None = None,
                 threads: int = 1):
        import onnxruntime as ort  # noqa: PLC0415  (kept local: agent.voice imports cheaply)

        from agent.voice.models import ensure_vad_model  # noqa: PLC0415

        self.config = config or VadConfig()
        self.model_path = Path(model_path) if model_path is not None else ensure_vad_model()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.model_path), opts,
                                             providers=["CPUExecutionProvider"])
        self._sr = np.array(VAD_RATE_HZ, np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: model state, partial frame, open segment, clock."""
        self._state = np.zeros(STATE_SHAPE, np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._frame = 0  # index of the next frame to run
        self._start: int | None = None  # first frame of the open segment
        self._silence_from: int | None = None  # first frame of the current pause inside it
        self.frames = 0
        self.last_prob = 0.0

    def probability(self, frame: np.ndarray) -> float:
        """Run one 512-sample frame through the model; advances the recurrent state."""
        x = np.concatenate([self._context, frame])[None, :]
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = frame[-CONTEXT_SAMPLES:]
        self.frames += 1
        return float(out[0, 0])

    def push(self, mono16k: np.ndarray) -> list[SpeechSegment]:
        """(n,) float 16 kHz samples -> segments that ended within them (maybe none)."""
        x = np.asarray(mono16k, np.float32).reshape(-1)
        buf = np.concatenate([self._pending, x]) if self._pending.size else x
        n_frames = buf.size // FRAME_SAMPLES
        out = []
        for k in range(n_frames):
            p = self.probability(buf[k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES])
            self.last_prob = p
            seg = self._step(p)
            if seg is not None:
                out.append(seg)
        self._pending = buf[n_frames * FRAME_SAMPLES:].copy()
        return out

    def _step(self, p: float) -> SpeechSegment | None:
        """Advance the hysteresis machine by one frame of probability p."""
        c, i = self.config, self._frame
        self._frame += 1
        if self._start is None:
            if p >= c.threshold:
                self._start, self._silence_from = i, None
            return None
        if p >= c.threshold:
            self._silence_from = None
        elif p < c.neg_threshold and self._silence_from is None:
            self._silence_from = i
        if self._silence_from is not None and (i + 1 - self._silence_from) * FRAME_S >= c.min_silence_s:
            return self._close(self._silence_from)
        if (i + 1 - self._start) * FRAME_S >= c.max_speech_s:
            return self._close(i + 1)
        return None

    def _close(self, end_frame: int) -> SpeechSegment | None:
        start, self._start, self._silence_from = self._start, None, None
        c = self.config
        if (end_frame - start) * FRAME_S < c.min_speech_s:
            return None
        t_now = self._frame * FRAME_S
        return SpeechSegment(max(0.0, start * FRAME_S - c.speech_pad_s),
                             min(t_now, end_frame * FRAME_S + c.speech_pad_s))

    def flush(self) -> list[SpeechSegment]:
        """End of stream: close an open segment at the last frame; then reset()."""
        seg = None
        if self._start is not None:
            seg = self._close(self._silence_from if self._silence_from is not None else self._frame)
        self.reset()
        return [seg] if seg is not None else []

    @property
    def in_speech(self) -> bool:
        return self._start is not None

    @property
    def t_s(self) -> float:
        """Seconds of audio the model has consumed (whole frames)."""
        return self._frame * FRAME_S

    def segments(self, audio: np.ndarray, rate_hz: int) -> list[SpeechSegment]:
        """Batch: the speech segments of a whole clip, (T,) mono or (2, T) binaural (mixed).

        Resets the stream first; times are seconds from the clip's start."""
        audio = np.asarray(audio, np.float32)
        mono = audio.mean(axis=0) if audio.ndim == 2 else audio
        self.reset()
        segs = self.push(resample_to(mono, rate_hz, VAD_RATE_HZ))
        return segs + self.flush()
