"""Whole recordings of any length through the encoder in bounded memory.

A one-pass `EncoderRuntime.run_audio` holds the audio, its features and the STFT
intermediates at once: about 2.4 MB per second of 48 kHz stereo (an hour needs 8-9 GB).
Here the audio arrives in blocks (read from the wav, or cut from an array), is resampled
by `StreamResampler` and pushed through the `StreamingEncoder`, which is exact: the frames
equal the one-pass frames to float rounding. Only the small per-frame outputs that
decoding reads (ACCDOA and log-distance: about 2 kB per second) are kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from agent.core.audio import StreamResampler, check_binaural
from agent.core.dataset import wav_blocks
from agent.core.errors import BinauraError

#: Audio per block read and pushed (the memory bound scales with it).
BLOCK_S = 10.0


def array_blocks(audio: np.ndarray, sample_rate_hz: int, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """(2, T) audio as consecutive (2, n) views of block_s seconds."""
    n = max(1, int(block_s * sample_rate_hz))
    for i in range(0, audio.shape[-1], n):
        yield audio[:, i:i + n]


def encode_blocks(runtime, blocks: Iterable[np.ndarray], sample_rate_hz: int,
                  where: str = "audio") -> tuple[np.ndarray, np.ndarray]:
    """(2, n) blocks of one signal at sample_rate_hz -> accdoa (T, S, 3), log_distance (T, S)
    (S slots, runtime.slot_labels) of the whole signal, as `runtime.run_audio` would give them
    (the runtime's mirror and head-scale settings apply)."""
    from agent.localize.encoder import StreamingEncoder  # noqa: PLC0415

    target = runtime.features.sample_rate_hz
    resampler = StreamResampler(sample_rate_hz, target)
    stream = StreamingEncoder(runtime, hop_frames=max(1, int(BLOCK_S * runtime.output_rate_hz)))
    accdoa, log_distance = [], []

    def keep(frames) -> None:
        if frames is not None:
            accdoa.append(frames.accdoa)
            log_distance.append(frames.log_distance)

    for block in blocks:
        check_binaural(block, sample_rate_hz, where)
        keep(stream.push(resampler.push(block)))
    keep(stream.push(resampler.flush()))
    keep(stream.flush())
    if not accdoa:
        f = runtime.features
        raise BinauraError(f"{where}: too short for one encoder frame "
                           f"(need {f.n_fft + runtime.time_pool * f.hop_length} samples at {target} Hz)")
    return np.concatenate(accdoa), np.concatenate(log_distance)


def encode_file(runtime, path: str | os.PathLike, block_s: float = BLOCK_S) -> tuple[np.ndarray, np.ndarray]:
    """A binaural wav of any length -> accdoa (T, S, 3), log_distance (T, S), read block by block."""
    rate, blocks = wav_blocks(path, block_s)
    return encode_blocks(runtime, blocks, rate, str(path))
