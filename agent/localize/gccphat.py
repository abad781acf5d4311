"""Classical binaural localizer: GCC-PHAT interaural delay plus interaural level difference.

The summed GCC-PHAT over active frames gives the interaural time difference
(ITD) of each dominant source; a spherical head (Woodworth) maps ITD to the
lateral angle, refined by the high-frequency ILD. Two ears without pinna cues
cannot tell front from back: this localizer always answers in the front
hemisphere, and the benchmark's front_back_confusion shows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.core.audio import HEAD_RADIUS_M, SPEED_OF_SOUND_M_S, check_binaural
from agent.core.predictor import Clip
from agent.core.scene import SourceEstimate


@dataclass
class GccPhatConfig:
    frame_s: float = 0.04
    hop_s: float = 0.02
    upsample: int = 4  # lag resolution = 1 / (rate * upsample)
    max_itd_s: float = 0.001
    active_db: float = -20.0  # frames within this of the loudest frame are used (tuned on a train-split dev set)
    peak_rel: float = 0.35  # a further source needs this fraction of the main peak
    min_peak_sep_s: float = 0.00012
    max_sources: int = 3
    head_radius_m: float = HEAD_RADIUS_M
    ild_weight: float = 0.25
    ild_max_db: float = 18.0  # ILD at 90 deg lateral, 2-8 kHz band (KEMAR-like)


def woodworth_itd_s(lateral_rad, radius_m: float = HEAD_RADIUS_M):
    """ITD of a rigid sphere for a lateral angle (Woodworth): (a / c)(theta + sin theta)."""
    return radius_m / SPEED_OF_SOUND_M_S * (lateral_rad + np.sin(lateral_rad))


def itd_to_lateral_deg(itd_s: float, radius_m: float = HEAD_RADIUS_M) -> float:
    grid = np.linspace(-np.pi / 2, np.pi / 2, 721)
    itd = woodworth_itd_s(grid, radius_m)
    return float(np.rad2deg(np.interp(np.clip(itd_s, itd[0], itd[-1]), itd, grid)))


def active_phat(audio: np.ndarray, rate: int, cfg: GccPhatConfig) -> tuple[np.ndarray, np.ndarray]:
    """Hann frames within cfg.active_db of the loudest -> their spectra (2, F, n + 1), zero-padded
    to 2n, and PHAT-weighted cross-spectra R x L* (F, n + 1): a source on the left (R lags) gives
    a positive lag. audio (2, T) with T >= one frame."""
    n = int(cfg.frame_s * rate)
    idx = np.arange(0, audio.shape[1] - n + 1, int(cfg.hop_s * rate))
    frames = np.stack([audio[:, i:i + n] for i in idx], axis=1) * np.hanning(n)  # (2, F, n)
    energy = (frames**2).sum(axis=(0, 2))
    active = energy >= energy.max() * 10 ** (cfg.active_db / 10)
    spec = np.fft.rfft(frames[:, active], 2 * n, axis=-1)
    cross = spec[1] * np.conj(spec[0])
    return spec, cross / (np.abs(cross) + 1e-12)


def summed_gcc(phat: np.ndarray, n: int, rate: int, cfg: GccPhatConfig) -> tuple[np.ndarray, np.ndarray]:
    """The frames' GCC-PHAT summed, on lags within +-max_itd_s: (lags in upsampled samples, curve)."""
    n_up = 2 * n * cfg.upsample
    cc = np.fft.irfft(phat.sum(axis=0), n_up)
    max_lag = int(cfg.max_itd_s * rate * cfg.upsample)
    lags = np.arange(-max_lag, max_lag + 1)
    return lags, cc[lags % n_up]


class GccPhatLocalizer:
    name = "gccphat"
    needs_audio = True

    def __init__(self, config: GccPhatConfig | None = None):
        self.config = config or GccPhatConfig()

    def localize(self, clip: Clip) -> list[SourceEstimate]:
        cfg = self.config
        audio = check_binaural(clip.audio, clip.sample_rate_hz, clip.scene_id)
        rate = clip.sample_rate_hz
        n = int(cfg.frame_s * rate)
        if audio.shape[1] < n:
            return []
        spec, phat = active_phat(audio, rate, cfg)
        lags, curve = summed_gcc(phat, n, rate, cfg)
        n_up = 2 * n * cfg.upsample
        peaks = _pick_peaks(curve, cfg.peak_rel, int(cfg.min_peak_sep_s * rate * cfg.upsample),
                            cfg.max_sources)
        freqs = np.fft.rfftfreq(2 * n, 1.0 / rate)
        band = (freqs >= 2000) & (freqs <= 8000)
        out = []
        for p in peaks:
            itd_s = lags[p] / (rate * cfg.upsample)
            lat_itd = itd_to_lateral_deg(itd_s, cfg.head_radius_m)
            # ILD of the frames whose own GCC peak agrees with this source's ITD.
            per_frame = np.fft.irfft(phat, n_up, axis=-1)[:, lags % n_up]
            near = np.abs(np.argmax(per_frame, axis=1) - p) <= 2
            if near.any():
                pl = (np.abs(spec[0][near][:, band]) ** 2).sum()
                pr = (np.abs(spec[1][near][:, band]) ** 2).sum()
                ild_db = 10 * np.log10((pl + 1e-12) / (pr + 1e-12))
                lat_ild = float(np.rad2deg(np.arcsin(np.clip(ild_db / cfg.ild_max_db, -1, 1))))
                lat = (1 - cfg.ild_weight) * lat_itd + cfg.ild_weight * lat_ild
            else:
                lat = lat_itd
            out.append(SourceEstimate(azimuth_deg=float(lat), elevation_deg=0.0, distance_m=None,
                                      label=None, confidence=float(curve[p] / (curve.max() + 1e-12))))
        return out


def _pick_peaks(curve: np.ndarray, rel: float, min_sep: int, k: int) -> list[int]:
    """Indices of up to k local maxima above rel * max, at least min_sep apart."""
    is_peak = np.r_[False, (curve[1:-1] > curve[:-2]) & (curve[1:-1] >= curve[2:]), False]
    cand = np.where(is_peak)[0]
    if len(cand) == 0:
        cand = np.array([int(np.argmax(curve))])
    cand = cand[np.argsort(curve[cand])[::-1]]
    top = curve[cand[0]]
    chosen: list[int] = []
    for c in cand:
        if curve[c] < rel * top or len(chosen) == k:
            break
        if all(abs(c - o) >= min_sep for o in chosen):
            chosen.append(int(c))
    return chosen
