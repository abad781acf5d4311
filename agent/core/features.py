"""Encoder input features, in numpy: the one implementation training and the agent share.

Spatial features (per 20 ms frame, 64 bands each), stacked as channels:
  0 logmel_l   log-mel power of the left ear, dB
  1 logmel_r   log-mel power of the right ear, dB
  2 ild        interaural level difference per band, dB (left minus right)
  3 ipd_cos    real part of the band's magnitude-weighted mean interaural cross-spectrum
  4 ipd_sin    imaginary part (positive when the left ear leads)
  5 gcc        GCC-PHAT sampled on a grid of interaural lags in [-max_lag, +max_lag]
Bands reach 20 kHz so the pinna's spectral cues (front/back, elevation; see
REFERENCES.md) survive. The semantic branch's features are the log-mel of the
mono mix restricted to 0-8 kHz (the content of a 16 kHz signal), from the same
STFT: no second transform, no resampler state to keep in streaming.

Frames use no centre padding: frame k covers samples [k*hop, k*hop + n_fft), so
a stream and a whole file give identical frames (see StreamingFeatures).

Head size (head_scale): a head s times the size of the one the encoder learnt
(KEMAR) has s times its interaural delays and its pinna and shadowing features
at 1/s of their frequencies, so its spectra read at f / s look like KEMAR's at
f (ITD: the cross-spectrum's phase 2 pi (f / s) (s tau) = 2 pi f tau). The spatial
channels are therefore computed from the spectra warped along frequency; the
warp is linear, so it folds into the band tables at no cost per frame. The
semantic channel (the sound's content) is never warped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from agent.core.audio import SAMPLE_RATE_HZ, check_binaural
from agent.core.errors import AudioFormatError, ConfigError, check_known_keys

SPATIAL_CHANNELS = ("logmel_l", "logmel_r", "ild", "ipd_cos", "ipd_sin", "gcc")
#: Power floor of the log-mel (dB re full scale); keeps digital silence finite.
POWER_FLOOR = 1e-10


@dataclass(frozen=True)
class FeatureConfig:
    """STFT framing and band layout. Saved in every checkpoint and ONNX manifest."""

    sample_rate_hz: int = SAMPLE_RATE_HZ
    n_fft: int = 2048
    win_length: int = 1920  # 40 ms Hann, zero-padded to n_fft
    hop_length: int = 960  # 20 ms: 50 feature frames per second
    n_mels: int = 64
    fmin_hz: float = 50.0
    fmax_hz: float = 20_000.0
    semantic_fmax_hz: float = 8_000.0
    max_lag_s: float = 0.001  # KEMAR's ITD stays under 0.9 ms

    def validate(self) -> FeatureConfig:
        p = []
        if self.sample_rate_hz < 32_000:
            p.append(f"sample_rate_hz must be >= 32000 (pinna cues above 8 kHz), got {self.sample_rate_hz}")
        if not 0 < self.win_length <= self.n_fft:
            p.append(f"need 0 < win_length <= n_fft, got {self.win_length} and {self.n_fft}")
        if not 0 < self.hop_length <= self.win_length:
            p.append(f"need 0 < hop_length <= win_length, got {self.hop_length}")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            p.append(f"need 0 <= fmin_hz < fmax_hz <= rate/2, got {self.fmin_hz}, {self.fmax_hz}")
        if not self.fmin_hz < self.semantic_fmax_hz <= self.sample_rate_hz / 2:
            p.append(f"semantic_fmax_hz must lie in (fmin_hz, rate/2], got {self.semantic_fmax_hz}")
        if self.n_mels < 8:
            p.append(f"n_mels must be >= 8, got {self.n_mels}")
        if not 0 < self.max_lag_s <= 0.005:
            p.append(f"max_lag_s must be in (0, 0.005], got {self.max_lag_s}")
        if p:
            raise ConfigError(p, "feature config")
        return self

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        return 0 if n_samples < self.n_fft else 1 + (n_samples - self.n_fft) // self.hop_length

    def frame_centre_s(self, k) -> np.ndarray:
        return (np.asarray(k) * self.hop_length + self.n_fft / 2) / self.sample_rate_hz

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        check_known_keys(cls, d, "feature config")
        return cls(**d).validate()


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def _mel_edges_hz(n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin_hz), _hz_to_mel(fmax_hz), n_mels + 2))


def mel_band_centres_hz(n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """(n_mels,) the frequency at which each band of `mel_matrix` peaks, Hz."""
    return _mel_edges_hz(n_mels, fmin_hz, fmax_hz)[1:-1]


def mel_matrix(rate_hz: int, n_fft: int, n_mels: int, fmin_hz: float, fmax_hz: float) -> np.ndarray:
    """Triangular HTK-mel filters, (n_mels, n_fft//2+1), each band never empty (area-normalised)."""
    freqs = np.arange(n_fft // 2 + 1) * rate_hz / n_fft
    edges = _mel_edges_hz(n_mels, fmin_hz, fmax_hz)
    w = np.zeros((n_mels, freqs.size))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        w[m] = np.clip(np.minimum(up, down), 0.0, None)
        if w[m].sum() == 0:  # narrower than a bin: take the nearest bin
            w[m, int(np.argmin(np.abs(freqs - mid)))] = 1.0
        w[m] /= w[m].sum()
    return w.astype(np.float32)


#: head sizes relative to the encoder's own head that head_scale accepts
HEAD_SCALE_RANGE = (0.5, 2.0)


def check_head_scale(head_scale: float, where: str = "head_scale") -> float:
    try:
        s = float(head_scale)
    except (TypeError, ValueError):
        s = float("nan")
    if not HEAD_SCALE_RANGE[0] <= s <= HEAD_SCALE_RANGE[1]:
        raise ConfigError([f"{where} must be a number in [{HEAD_SCALE_RANGE[0]}, {HEAD_SCALE_RANGE[1]}] (the "
                           f"listener's head size over the encoder's, 1.0 for KEMAR's), got {head_scale!r}"],
                          "head scale")
    return s


def warp_table(table: np.ndarray, head_scale: float) -> np.ndarray:
    """A per-bin table (K, n) folded with the frequency warp X'(f) = X(f / head_scale).

    Bin j of the warped spectrum interpolates bins i0 = floor(j / s) and i0 + 1 linearly,
    so X' @ table == X @ warp_table(table); positions past the last bin read the last bin.
    """
    k = table.shape[0]
    pos = np.minimum(np.arange(k) / head_scale, k - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, k - 1)
    w = (pos - i0)[:, None]
    out = np.zeros(table.shape, np.float64)
    np.add.at(out, i0, (1.0 - w) * table)
    np.add.at(out, i1, w * table)
    return out.astype(table.dtype)


@lru_cache(maxsize=8)
def _tables(cfg: FeatureConfig, head_scale: float = 1.0):
    win = np.zeros(cfg.n_fft, np.float32)
    off = (cfg.n_fft - cfg.win_length) // 2
    win[off:off + cfg.win_length] = np.hanning(cfg.win_length + 2)[1:-1]
    mel = mel_matrix(cfg.sample_rate_hz, cfg.n_fft, cfg.n_mels, cfg.fmin_hz, cfg.fmax_hz)
    sem = mel_matrix(cfg.sample_rate_hz, cfg.n_fft, cfg.n_mels, cfg.fmin_hz, cfg.semantic_fmax_hz)
    freqs = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate_hz / cfg.n_fft
    lags = np.linspace(-cfg.max_lag_s, cfg.max_lag_s, cfg.n_mels)
    phase = 2 * np.pi * freqs[:, None] * lags[None, :]
    # g(tau) = sum_k Re(C_k exp(-j 2 pi f_k tau)) / K peaks at the lag by which the left ear leads.
    gcc_cos = (np.cos(phase) / freqs.size).astype(np.float32)
    gcc_sin = (np.sin(phase) / freqs.size).astype(np.float32)
    # (K, n) tables the spectra multiply; the spatial ones carry the head-size warp
    spatial_mel = mel.T.copy()
    if head_scale != 1.0:
        spatial_mel, gcc_cos, gcc_sin = (warp_table(t, head_scale) for t in (spatial_mel, gcc_cos, gcc_sin))
    return win, spatial_mel, sem.T.copy(), gcc_cos, gcc_sin


def stft(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """(C, T) float -> (C, n_frames, n_fft//2+1) complex64, frames without centre padding."""
    win = _tables(cfg)[0]
    n = cfg.n_frames(audio.shape[-1])
    if n == 0:
        return np.zeros(audio.shape[:-1] + (0, cfg.n_fft // 2 + 1), np.complex64)
    frames = np.lib.stride_tricks.sliding_window_view(audio, cfg.n_fft, axis=-1)[..., ::cfg.hop_length, :][..., :n, :]
    return scipy.fft.rfft(frames * win, axis=-1).astype(np.complex64, copy=False)


def spectra_to_features(spec: np.ndarray, cfg: FeatureConfig,
                        head_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(2, T, K) complex STFT -> spatial (6, T, n_mels) and semantic (T, n_mels), float32.
    head_scale: the listener's head size over the encoder's (module docstring)."""
    _, mel, sem, gcc_cos, gcc_sin = _tables(cfg, float(head_scale))
    xl, xr = spec[0], spec[1]
    pl = xl.real ** 2 + xl.imag ** 2
    pr = xr.real ** 2 + xr.imag ** 2
    mel_l = 10.0 * np.log10(pl @ mel + POWER_FLOOR)
    mel_r = 10.0 * np.log10(pr @ mel + POWER_FLOOR)
    cross = xl * np.conj(xr)
    mag = np.sqrt(pl * pr)
    denom = mag @ mel + POWER_FLOOR
    ipd_cos = (cross.real @ mel) / denom
    ipd_sin = (cross.imag @ mel) / denom
    phat = cross / (mag + POWER_FLOOR)
    gcc = phat.real @ gcc_cos + phat.imag @ gcc_sin
    mid = 0.5 * (xl + xr)
    semantic = 10.0 * np.log10((mid.real ** 2 + mid.imag ** 2) @ sem + POWER_FLOOR)
    spatial = np.stack([mel_l, mel_r, mel_l - mel_r, ipd_cos, ipd_sin, gcc]).astype(np.float32)
    return spatial, semantic.astype(np.float32)


def compute_features(audio: np.ndarray, sample_rate_hz: int, cfg: FeatureConfig | None = None,
                     where: str = "audio", head_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Binaural (2, T) audio -> spatial (6, frames, n_mels), semantic (frames, n_mels).
    head_scale: the listener's head size over the encoder's (module docstring)."""
    cfg = cfg or FeatureConfig()
    head_scale = check_head_scale(head_scale)
    audio = check_binaural(audio, sample_rate_hz, where)
    if sample_rate_hz != cfg.sample_rate_hz:
        raise AudioFormatError(f"{where}: the encoder expects {cfg.sample_rate_hz} Hz audio, got "
                               f"{sample_rate_hz} Hz; resample it first")
    return spectra_to_features(stft(audio, cfg), cfg, head_scale)


def mirror_spatial(spatial: np.ndarray) -> np.ndarray:
    """Features of the left-right mirrored scene (azimuth -> -azimuth): swap ears,
    negate ILD and the interaural phase's sine, reverse the lag axis. Works on
    (..., 6, T, F) arrays of numpy or torch alike (used for augmentation and tests)."""
    out = spatial.clone() if hasattr(spatial, "clone") else spatial.copy()
    out[..., 0, :, :] = spatial[..., 1, :, :]
    out[..., 1, :, :] = spatial[..., 0, :, :]
    out[..., 2, :, :] = -spatial[..., 2, :, :]
    out[..., 4, :, :] = -spatial[..., 4, :, :]
    gcc = spatial[..., 5, :, :]
    out[..., 5, :, :] = gcc.flip(-1) if hasattr(gcc, "flip") else gcc[..., ::-1]
    return out


class StreamingFeatures:
    """Feature frames from audio arriving in chunks of any size; equal to compute_features
    on the concatenated stream. push() returns the new frames; reset() starts over."""

    def __init__(self, cfg: FeatureConfig | None = None, head_scale: float = 1.0):
        self.cfg = (cfg or FeatureConfig()).validate()
        self.head_scale = check_head_scale(head_scale)
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros((2, 0), np.float32)
        self.frames_out = 0

    def push(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chunk = check_binaural(chunk, self.cfg.sample_rate_hz, "stream chunk")
        self._buf = np.concatenate([self._buf, chunk], axis=1)
        n = self.cfg.n_frames(self._buf.shape[1])
        spatial, semantic = spectra_to_features(stft(self._buf, self.cfg), self.cfg, self.head_scale)
        consumed = n * self.cfg.hop_length
        self._buf = self._buf[:, consumed:]
        self.frames_out += n
        return spatial, semantic
