"""Spoken questions from the live binaural stream, and "what is the person on my left saying?".

`SpokenQuestions` takes the capture stream's PcmBlocks (any rate, 48 kHz in binaura), mixes
to mono, resamples to 16 kHz on the fly, gates with the silero VAD and runs Whisper only on
the speech segments: a bird or music never reaches the recogniser (REAL_WORLD.md). Each
segment that yields words becomes a SpokenQuestion on the stream's clock.

`transcribe_span` transcribes a speech track over its time span, steered toward the track's
azimuth (steer.py) with the method the interfering-talker measurement chose.

Recognition runs inline in `push` (about a second on one core for tiny.en): the live runner
calls it from its own worker so capture never waits on it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

from agent.capture.block import PcmBlock
from agent.core.audio import StreamResampler, check_binaural
from agent.core.errors import AudioFormatError
from agent.core.geometry import sector_of, wrap_azimuth_deg
from agent.voice.asr import Transcriber, Transcript
from agent.voice.steer import STEER_RATE_HZ, steer
from agent.voice.vad import VAD_RATE_HZ, SpeechSegment, Vad, VadConfig

#: The steering `transcribe_span` uses unless told otherwise, chosen by the word error
#: measured with an interfering talker (tests/agent/test_voice_steer.py, marked slow): the
#: binaural mask beat the plain mix, better-ear and delay-and-sum.
DEFAULT_STEERING = "ipd_mask"
_WORD = re.compile(r"[A-Za-z0-9]")
SPAN_PEAK = 0.5  # transcribe_span's level into Whisper (full scale 1), as in the measurement
SPAN_MIN_PEAK = 1e-4  # below this the span is digital silence: leave it alone

assert STEER_RATE_HZ == VAD_RATE_HZ  # steer() output goes straight to the recogniser


@dataclass(frozen=True)
class SpokenQuestion:
    """Words recognised in one speech segment; times on the capture stream's clock (s)."""

    text: str
    t_start_s: float
    t_end_s: float
    transcript: Transcript


@dataclass(frozen=True)
class SpokenConfig:
    vad: VadConfig = field(default_factory=VadConfig)
    min_word_chars: int = 2  # a transcript with fewer letters/digits is no question ("", ".")
    history_margin_s: float = 2.0  # audio kept beyond the longest segment the VAD can emit
    # Capture blocks are gathered to this length before resampling: StreamResampler costs
    # ~50 ms CPU per audio second in 20 ms blocks and ~4 ms in 100 ms ones (it designs its
    # filter per call). The delay it adds is far below the VAD's end-of-speech pause.
    resample_block_s: float = 0.1


class _Ring:
    """The last `capacity` samples of a 1-D stream, addressed by absolute sample index."""

    def __init__(self, capacity: int):
        self.buf = np.zeros(capacity, np.float32)
        self.total = 0  # samples written so far

    def write(self, x: np.ndarray) -> None:
        cap, n = self.buf.size, x.size
        x = x[-cap:]  # a write longer than the ring keeps only its newest samples
        i = (self.total + n - x.size) % cap
        k = min(x.size, cap - i)
        self.buf[i:i + k] = x[:k]
        self.buf[:x.size - k] = x[k:]
        self.total += n

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end), clipped to what is still held."""
        start, end = max(start, self.total - self.buf.size, 0), min(end, self.total)
        if end <= start:
            return np.zeros(0, np.float32)
        idx = np.arange(start, end) % self.buf.size
        return self.buf[idx].copy()


class SpokenQuestions:
    """PcmBlocks in, SpokenQuestions out. Holds the stream state; `reset()` starts over."""

    def __init__(self, transcriber: Transcriber | None = None, vad: Vad | None = None,
                 config: SpokenConfig | None = None):
        self.config = config or SpokenConfig()
        self.vad = vad if vad is not None else Vad(config=self.config.vad)
        self.transcriber = transcriber if transcriber is not None else default_transcriber()
        v = self.vad.config
        keep_s = v.max_speech_s + v.min_silence_s + 2 * v.speech_pad_s + self.config.history_margin_s
        self._ring = _Ring(int(keep_s * VAD_RATE_HZ))
        self.reset()

    def reset(self) -> None:
        self.vad.reset()
        self._ring.total = 0
        self._resampler: StreamResampler | None = None
        self._rate_hz: int | None = None
        self._t0_s: float | None = None  # stream time of the first sample
        self._held: list[np.ndarray] = []  # mono input not yet resampled
        self._held_n = 0
        self._counts = dict.fromkeys(
            ("blocks", "audio_ms", "speech_segments", "asr_runs", "asr_ms", "questions",
             "empty_transcripts"), 0)

    def counters(self) -> dict[str, int]:
        """Health counters: blocks and audio in, VAD segments, ASR runs and time, questions."""
        return dict(self._counts, vad_frames=self.vad.frames)

    @property
    def in_speech(self) -> bool:
        """Someone is speaking now (the VAD holds an open segment): e.g. show "listening"."""
        return self.vad.in_speech

    def push(self, block: PcmBlock) -> list[SpokenQuestion]:
        """One capture block -> the questions whose speech ended in it (usually none)."""
        if self._rate_hz is None:
            self._rate_hz, self._t0_s = block.rate_hz, block.t_s
            self._resampler = StreamResampler(block.rate_hz, VAD_RATE_HZ)
        elif block.rate_hz != self._rate_hz:
            raise AudioFormatError(f"SpokenQuestions: block rate changed from {self._rate_hz} "
                                   f"to {block.rate_hz} Hz mid-stream; reset() first")
        self._counts["blocks"] += 1
        self._counts["audio_ms"] += int(round(1000 * block.duration_s))
        self._held.append(block.samples.mean(axis=0))
        self._held_n += block.n
        if self._held_n < self.config.resample_block_s * self._rate_hz:
            return []
        return self._feed(self._resampler.push(self._take_held())[0])

    def flush(self) -> list[SpokenQuestion]:
        """End of stream: close an open segment and transcribe it."""
        if self._resampler is None:
            return []
        out = self._feed(self._resampler.push(self._take_held())[0]) if self._held_n else []
        out += self._feed(self._resampler.flush()[0])
        out += self._handle(self.vad.flush())
        return out

    def _take_held(self) -> np.ndarray:
        held = np.concatenate(self._held)[None, :] if self._held else np.zeros((1, 0), np.float32)
        self._held, self._held_n = [], 0
        return held

    def _feed(self, mono16k: np.ndarray) -> list[SpokenQuestion]:
        self._ring.write(mono16k)
        return self._handle(self.vad.push(mono16k))

    def _handle(self, segments: list[SpeechSegment]) -> list[SpokenQuestion]:
        out = []
        for seg in segments:
            self._counts["speech_segments"] += 1
            audio = self._ring.read(int(round(seg.t_start_s * VAD_RATE_HZ)),
                                    int(round(seg.t_end_s * VAD_RATE_HZ)))
            tr = self.transcriber.transcribe(audio, t0_s=self._t0_s + seg.t_start_s)
            self._counts["asr_runs"] += 1
            self._counts["asr_ms"] += int(round(1000 * tr.seconds))
            if len(_WORD.findall(tr.text)) < self.config.min_word_chars:
                self._counts["empty_transcripts"] += 1
                continue
            self._counts["questions"] += 1
            out.append(SpokenQuestion(tr.text, self._t0_s + seg.t_start_s,
                                      self._t0_s + seg.t_end_s, tr))
        return out


@functools.lru_cache(maxsize=1)
def default_transcriber() -> Transcriber:
    """One shared default Transcriber (packaged tiny.en, CPU, int8): loading costs ~1 s."""
    return Transcriber()


@dataclass(frozen=True)
class SpanTranscript:
    """What a track said over its span, and where it came from (times on the caller's clock)."""

    text: str
    t_start_s: float
    t_end_s: float
    azimuth_deg: float | None
    steering: str  # the steer.py method used
    transcript: Transcript

    def answer(self) -> str:
        """One sentence for the user: the words and their direction."""
        where = "" if self.azimuth_deg is None else (
            f" from the {sector_of(self.azimuth_deg)} ({self.azimuth_deg:+.0f} deg)")
        if not self.text:
            return f"I could not make out any words{where} between {self.t_start_s:.1f} and {self.t_end_s:.1f} s."
        return f'Someone{where} said: "{self.text}" ({self.t_start_s:.1f}-{self.t_end_s:.1f} s).'


def transcribe_span(audio: np.ndarray, rate_hz: int, t0_s: float, t1_s: float,
                    azimuth_deg: float | None = None, *, audio_t0_s: float = 0.0,
                    transcriber: Transcriber | None = None, steering: str | None = None,
                    elevation_deg: float = 0.0, pad_s: float = 0.2) -> SpanTranscript:
    """The words spoken over [t0_s, t1_s] in binaural audio (2, T) whose first sample is at
    audio_t0_s, steered toward azimuth_deg (None: the plain mix)."""
    audio = check_binaural(audio, rate_hz, "transcribe_span")
    if t1_s <= t0_s:
        raise ValueError(f"transcribe_span: need t0_s < t1_s, got {t0_s}, {t1_s}")
    i0 = max(0, int(np.floor((t0_s - pad_s - audio_t0_s) * rate_hz)))
    i1 = min(audio.shape[1], int(np.ceil((t1_s + pad_s - audio_t0_s) * rate_hz)))
    if i1 - i0 <= 0:
        raise ValueError(f"transcribe_span: [{t0_s}, {t1_s}] s lies outside the audio "
                         f"({audio_t0_s} s + {audio.shape[1] / rate_hz:.2f} s)")
    method = steering or (DEFAULT_STEERING if azimuth_deg is not None else "mix")
    az = None if azimuth_deg is None else float(wrap_azimuth_deg(azimuth_deg))
    mono = steer(audio[:, i0:i1], rate_hz, az, method, elevation_deg)
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak > SPAN_MIN_PEAK:  # a fixed peak: steering changes the level, Whisper's input should not
        mono = mono * (SPAN_PEAK / peak)
    tr = (transcriber or default_transcriber()).transcribe(
        mono, t0_s=audio_t0_s + i0 / rate_hz)
    return SpanTranscript(tr.text, t0_s, t1_s, az, method, tr)
