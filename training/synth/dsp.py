"""Small signal helpers shared by the sound generators (mono float arrays at rate_hz)."""

from __future__ import annotations

import functools

import numpy as np
from scipy.fft import irfft, next_fast_len
from scipy.signal import butter, sosfilt


def t_axis(n: int, rate_hz: int) -> np.ndarray:
    return np.arange(n) / rate_hz


def envelope_adsr(n: int, rate_hz: int, attack_s: float, decay_s: float, sustain: float,
                  release_s: float) -> np.ndarray:
    a = max(int(attack_s * rate_hz), 1)
    d = max(int(decay_s * rate_hz), 1)
    r = max(int(release_s * rate_hz), 1)
    s = max(n - a - d - r, 0)
    env = np.concatenate([np.linspace(0, 1, a), np.linspace(1, sustain, d), np.full(s, sustain),
                          np.linspace(sustain, 0, r)])
    out = np.zeros(n)
    out[: min(n, len(env))] = env[:n]
    return out


def exp_decay(n: int, rate_hz: int, tau_s: float) -> np.ndarray:
    return np.exp(-t_axis(n, rate_hz) / max(tau_s, 1e-4))


@functools.lru_cache(maxsize=4096)
def _butter(order: int, edges: tuple[float, ...], btype: str) -> np.ndarray:
    return butter(order, edges if len(edges) > 1 else edges[0], btype=btype, output="sos")


def _design(order: int, edges_hz: tuple[float, ...], rate_hz: int, btype: str) -> np.ndarray:
    # Edges are rounded to 1/48 octave so designs repeat and can be cached (the
    # rounding is far below what the random draws vary).
    nyq = rate_hz / 2
    rounded = tuple(float(2 ** (np.round(np.log2(e / nyq) * 48) / 48)) for e in edges_hz)
    return _butter(order, rounded, btype)


def bandpass(x: np.ndarray, rate_hz: int, lo_hz: float, hi_hz: float, order: int = 2) -> np.ndarray:
    nyq = rate_hz / 2
    lo = min(max(lo_hz, 10.0), nyq * 0.95)
    hi = min(max(hi_hz, lo * 1.05), nyq * 0.98)
    return sosfilt(_design(order, (lo, hi), rate_hz, "band"), x)


def lowpass(x: np.ndarray, rate_hz: int, cut_hz: float, order: int = 2) -> np.ndarray:
    cut = min(max(cut_hz, 10.0), rate_hz / 2 * 0.98)
    return sosfilt(_design(order, (cut,), rate_hz, "low"), x)


def highpass(x: np.ndarray, rate_hz: int, cut_hz: float, order: int = 2) -> np.ndarray:
    cut = min(max(cut_hz, 10.0), rate_hz / 2 * 0.98)
    return sosfilt(_design(order, (cut,), rate_hz, "high"), x)


def harmonic_tone(f0_hz, n: int, rate_hz: int, amps) -> np.ndarray:
    """Sum of harmonics k*f0 (f0 may be an array: a glide), skipping those above Nyquist.

    sin(k*phase) comes from the Chebyshev recurrence
    sin((k+1)p) = 2 cos(p) sin(kp) - sin((k-1)p): one multiply-add per harmonic
    instead of a sine, exact to float64 rounding for the few dozen harmonics used.
    """
    f0 = np.broadcast_to(np.asarray(f0_hz, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f0) / rate_hz
    two_cos = 2 * np.cos(phase)
    s_prev, s_k = np.zeros(n), np.sin(phase)
    nyq = rate_hz / 2 * 0.95
    out = np.zeros(n)
    for k, a in enumerate(amps, start=1):
        if a != 0.0:
            out += a * np.where(k * f0 < nyq, s_k, 0.0) if k * f0.max() >= nyq else a * s_k
        s_prev, s_k = s_k, two_cos * s_k - s_prev
    return out


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    m = next_fast_len(n, real=True)
    spec = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    f = np.arange(m // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (-exponent / 2)
    spec[0] = 0.0
    x = irfft(spec, m)[:n]
    return x / (np.std(x) + 1e-12)


def place(out: np.ndarray, x: np.ndarray, start: int) -> None:
    """Add x into out starting at sample start, clipped to out's length."""
    if start >= len(out) or start + len(x) <= 0:
        return
    s0 = max(start, 0)
    out[s0: start + len(x)] += x[s0 - start: len(out) - start]


def normalize_rms(x: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """Scale to unit RMS over the active part (samples above -50 dB of the peak)."""
    peak = np.max(np.abs(x)) + eps
    active = np.abs(x) > peak * 10 ** (-50 / 20)
    rms = np.sqrt(np.mean(x[active] ** 2)) if active.any() else peak
    return (x / (rms + eps)).astype(np.float32)
