"""Sources of recorded audio: a wav file read block by block (`wav:PATH`) and audio already in
memory (`scene:demo`, which the CLI synthesizes).

Both deliver the audio at its own rate (resampling to the model's rate is the pipeline's
job) in blocks of `block_s` seconds, on the stream clock (0 = first sample). Paced, a block
is released when the wall clock reaches its end, as a microphone would release it: block k
ends at `t0 + (samples up to k) / rate` against one monotonic start time, so sleeping never
accumulates drift over a 20-minute file. Unpaced (`--fast`), blocks come as fast as the
consumer takes them. A paced source never drops audio: a consumer that falls behind delays
it, and each block released more than one block late is counted in `late_blocks`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from agent.capture.block import BLOCK_S, PcmBlock, check_block_s
from agent.core.audio import check_binaural
from agent.core.dataset import check_wav_header
from agent.core.errors import BinauraError


class _RecordedSource:
    """What WavSource and ArraySource share: the stream clock, pacing, counters, close()."""

    name: str
    rate_hz: int

    def __init__(self, rate_hz: int, paced: bool, block_s: float):
        self.rate_hz = int(rate_hz)
        self.paced = bool(paced)
        #: paced: runs on the wall clock like a device (the runner threads it)
        self.live = self.paced
        self.block_s = check_block_s(block_s)
        self.block_samples = max(1, int(round(self.block_s * self.rate_hz)))
        self._closed = threading.Event()
        self._samples_out = 0
        self._late_blocks = 0
        self._started = False

    def _chunks(self) -> Iterator[np.ndarray]:
        """(2, n) float32 blocks of the audio, n = block_samples except the last."""
        raise NotImplementedError

    def blocks(self) -> Iterator[PcmBlock]:
        """The audio as PcmBlocks until it ends or close() is called. One pass per source."""
        if self._started:
            raise BinauraError(f"{self.name}: blocks() was already called; a source streams once")
        self._started = True
        t0 = time.monotonic()
        chunks = self._chunks()
        try:
            for chunk in chunks:
                if self._closed.is_set():
                    return
                start = self._samples_out
                end = start + chunk.shape[1]
                if self.paced:
                    due = t0 + end / self.rate_hz  # absolute: no drift from summed sleeps
                    wait = due - time.monotonic()
                    if wait > 0:
                        if self._closed.wait(wait):
                            return
                    elif -wait > self.block_s:
                        self._late_blocks += 1
                self._samples_out = end
                yield PcmBlock(start / self.rate_hz, self.rate_hz, chunk)
        finally:
            chunks.close()  # closes the file now, also when the consumer stops early

    def counters(self) -> dict[str, int]:
        """samples_out: per channel, since the start; late_blocks: paced blocks released more
        than one block after their time (the consumer was behind)."""
        return {"samples_out": self._samples_out, "late_blocks": self._late_blocks}

    def close(self) -> None:
        """Stop `blocks()` at its next block (also mid-sleep); safe from another thread."""
        self._closed.set()

    def _mode(self) -> str:
        return "paced" if self.paced else "fast"


class WavSource(_RecordedSource):
    """A two-channel (L, R) audio file streamed in blocks of `block_s` seconds at its native
    rate; memory holds one block whatever the file's length. Any format libsndfile reads
    (wav, flac, ogg; int16/int24/float32).

    Raises BinauraError naming the file when it is missing, not audio, not two channels, or
    below MIN_SAMPLE_RATE_HZ."""

    def __init__(self, path: str | os.PathLike, paced: bool = True, block_s: float = BLOCK_S):
        self.path = Path(path)
        check_wav_header(self.path)  # missing, unreadable, mono, rate < 16 kHz: one clear error
        info = sf.info(str(self.path))
        super().__init__(int(info.samplerate), paced, block_s)
        self.n_samples = int(info.frames)
        if self.n_samples == 0:
            raise BinauraError(f"{self.path}: holds no samples; expected two-channel audio")
        self.name = f"wav:{self.path}"

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate_hz

    def _chunks(self) -> Iterator[np.ndarray]:
        try:
            with sf.SoundFile(str(self.path)) as f:
                for block in f.blocks(blocksize=self.block_samples, dtype="float32", always_2d=True):
                    yield np.ascontiguousarray(block.T)
        except (RuntimeError, sf.LibsndfileError) as e:
            raise BinauraError(f"{self.path}: corrupt audio data after sample {self._samples_out} ({e})") from e

    def describe(self) -> str:
        return (f"wav: {self.path} ({self.rate_hz} Hz, 2 ch, {self.duration_s:.1f} s, "
                f"{self._mode()}, blocks of {self.block_s:g} s)")


class ArraySource(_RecordedSource):
    """Binaural audio already in memory, (2, T) float32 at `rate_hz`, as a source: what the
    CLI streams for `scene:demo` (the agent never synthesizes: that needs training/)."""

    def __init__(self, audio: np.ndarray, rate_hz: int, name: str = "array", paced: bool = True,
                 block_s: float = BLOCK_S):
        self.audio = check_binaural(audio, int(rate_hz), where=name)
        if self.audio.shape[1] == 0:
            raise BinauraError(f"{name}: holds no samples; expected (2, T) audio with T > 0")
        super().__init__(int(rate_hz), paced, block_s)
        self.name = name

    def _chunks(self) -> Iterator[np.ndarray]:
        n = self.block_samples
        for i in range(0, self.audio.shape[1], n):
            yield np.ascontiguousarray(self.audio[:, i:i + n])  # a copy: blocks outlive the array

    def describe(self) -> str:
        return (f"{self.name}: in memory ({self.rate_hz} Hz, 2 ch, {self.audio.shape[1] / self.rate_hz:.1f} s, "
                f"{self._mode()}, blocks of {self.block_s:g} s)")
