"""Steering a binaural signal toward one direction before speech recognition.

Two ear microphones are ~17.5 cm apart, so classical beams are broad. What is tried here,
from the cheapest up (each returns 16 kHz mono for Whisper):
- "mix": (L + R) / 2, no steering.
- "better_ear": the ear on the talker's side; the head shadows the far ear (ILD up to
  ~20 dB above 3 kHz for a lateral source), the "better-ear listening" of psychoacoustics.
- "delay_sum": align the talker's interaural time difference (Woodworth's spherical head,
  ITD = r / c * (theta + sin theta)) and average; adds a few dB of directivity at most.
- "ipd_mask": delay_sum plus a soft time-frequency mask that keeps STFT bins whose
  interaural phase matches the talker's ITD (a DUET-style binaural mask) and whose level
  difference leans toward the talker's side.
Which one `transcribe_span` uses by default is chosen by a measured word error with an
interfering talker (tests/agent/test_voice_steer.py records the numbers).
"""

from __future__ import annotations

import numpy as np

from agent.core.audio import HEAD_RADIUS_M, SPEED_OF_SOUND_M_S, check_binaural, resample_to

STEER_RATE_HZ = 16_000
STEER_METHODS = ("mix", "better_ear", "delay_sum", "ipd_mask")
#: Within this many degrees of the median plane (front or back) the ears hear the talker
#: alike: steering has nothing to work with, so every method falls back to the mix.
MEDIAN_PLANE_DEG = 15.0
MASK_NFFT = 512  # 32 ms at 16 kHz: one pitch period's harmonics resolved, one phoneme long
MASK_HOP = 128
MASK_FLOOR = 0.1  # -20 dB: attenuate rather than delete bins, fewer musical artefacts for Whisper
MASK_ILD_SLOPE_DB = 6.0  # ILD (dB, toward the talker's side) over which the level cue saturates


def woodworth_itd_s(azimuth_deg: float, elevation_deg: float = 0.0) -> float:
    """ITD of a spherical head (s): positive when the left ear leads (source on the left)."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    lateral = np.arcsin(np.clip(np.sin(az) * np.cos(el), -1.0, 1.0))  # -pi/2..pi/2, +left
    return float(HEAD_RADIUS_M / SPEED_OF_SOUND_M_S * (lateral + np.sin(lateral)))


def _fractional_delay(x: np.ndarray, delay_s: float, rate_hz: int) -> np.ndarray:
    """Delay x (T,) by delay_s (may be fractional or negative) through the frequency domain."""
    n = x.size
    nfft = 1 << int(np.ceil(np.log2(n + abs(delay_s) * rate_hz + 2)))
    f = np.fft.rfftfreq(nfft, 1.0 / rate_hz)
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.exp(-2j * np.pi * f * delay_s), nfft)
    return y[:n].astype(np.float32)


def _delay_sum(lr: np.ndarray, itd_s: float, rate_hz: int) -> np.ndarray:
    # The leading ear is delayed by half the ITD and the lagging one advanced by half, so
    # the output stays centred in time on the input (word times remain comparable).
    left = _fractional_delay(lr[0], itd_s / 2, rate_hz)
    right = _fractional_delay(lr[1], -itd_s / 2, rate_hz)
    return 0.5 * (left + right)


def _ipd_mask(lr: np.ndarray, itd_s: float, azimuth_deg: float, rate_hz: int) -> np.ndarray:
    from scipy.signal import istft, stft  # noqa: PLC0415

    _, _, spec = stft(lr, fs=rate_hz, nperseg=MASK_NFFT, noverlap=MASK_NFFT - MASK_HOP)
    f = np.fft.rfftfreq(MASK_NFFT, 1.0 / rate_hz)[:, None]
    left, right = spec[0], spec[1]
    # Phase cue: for a talker with ITD tau the cross-spectrum L R* has phase 2 pi f tau.
    phase_err = np.angle(left * np.conj(right) * np.exp(-2j * np.pi * f * itd_s))
    m_phase = (0.5 * (1.0 + np.cos(phase_err))) ** 2
    # Level cue: bins louder in the talker's ear belong to the talker (head shadow).
    side = 1.0 if np.sin(np.radians(azimuth_deg)) > 0 else -1.0
    ild_db = 20 * np.log10((np.abs(left) + 1e-9) / (np.abs(right) + 1e-9))
    m_level = 1.0 / (1.0 + np.exp(-side * ild_db / MASK_ILD_SLOPE_DB * 4.0))
    mask = np.maximum(MASK_FLOOR, m_phase * m_level)
    aligned = 0.5 * (left * np.exp(-1j * np.pi * f * itd_s) + right * np.exp(1j * np.pi * f * itd_s))
    _, y = istft(mask * aligned, fs=rate_hz, nperseg=MASK_NFFT, noverlap=MASK_NFFT - MASK_HOP)
    return y[:lr.shape[1]].astype(np.float32)


def steer(audio: np.ndarray, rate_hz: int, azimuth_deg: float | None, method: str = "mix",
          elevation_deg: float = 0.0) -> np.ndarray:
    """(2, T) binaural at rate_hz -> (T',) 16 kHz mono steered toward azimuth_deg.

    azimuth_deg None, or within MEDIAN_PLANE_DEG of front or back, gives the plain mix."""
    if method not in STEER_METHODS:
        raise ValueError(f"unknown steering method {method!r}; allowed: {STEER_METHODS}")
    lr = resample_to(check_binaural(audio, rate_hz, "steer"), rate_hz, STEER_RATE_HZ)
    lateral_deg = None if azimuth_deg is None else np.degrees(np.arcsin(np.sin(np.radians(azimuth_deg))))
    if method == "mix" or lateral_deg is None or abs(lateral_deg) < MEDIAN_PLANE_DEG:
        return lr.mean(axis=0).astype(np.float32)
    if method == "better_ear":
        return lr[0 if lateral_deg > 0 else 1].astype(np.float32)
    itd_s = woodworth_itd_s(azimuth_deg, elevation_deg)
    if method == "delay_sum":
        return _delay_sum(lr, itd_s, STEER_RATE_HZ)
    return _ipd_mask(lr, itd_s, azimuth_deg, STEER_RATE_HZ)
