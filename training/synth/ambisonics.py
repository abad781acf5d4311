"""Low-order ambisonics rendered binaurally: what VR and game engines do (issue 22).

A source is encoded into order-N ambisonics (real spherical harmonics, ACN
channel order, N3D normalisation, no Condon-Shortley phase: AmbiX up to the
normalisation), decoded onto virtual loudspeakers with a sampling ("basic")
decoder, optionally max-rE weighted, and each loudspeaker feed is rendered
through the head's HRIRs. With N <= 3 the sound field is exact only up to
about N c / (2 pi r) ~ 1.9 kHz for a head of radius 8.75 cm (the N = kr rule):
above a few kHz the pinna and head-shadow cues are blurred, as in real
ambisonic renderers.

Loudspeakers: the 26-point Lebedev grid (exact for spherical polynomials up
to degree 7 >= 2N, so the decoder reproduces every harmonic of order <= 3);
for horizontal-plane heads, 2D (circular-harmonic) ambisonics on 2N + 2
equally spaced loudspeakers. For a static source the chain is linear, so
AmbisonicHead folds it into per-direction responses that plug in wherever a
Head does (anechoic and room rendering alike).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import oaconvolve
from scipy.special import lpmv

from agent.core.audio import SPEED_OF_SOUND_M_S
from agent.core.errors import BinauraError
from training.synth.heads import Head
from training.synth.hrtf import HRIR_TAPS, fractional_shift
from training.synth.measured_heads import HorizontalHrtfSet
from training.synth.room import render_paths

ORDERS = (1, 2, 3)
#: SceneSpec.extra / Scene.extra key of a scene rendered through ambisonics: its order
AMBISONIC_ORDER_KEY = "ambisonic_order"
#: max-rE angle (rad) for 3D ambisonics: a_n = P_n(cos(137.9 deg / (N + 1.51))) (Zotter & Frank 2012)
_MAX_RE_DEG = 137.9


def _check_order(order: int) -> int:
    if int(order) != order or order not in ORDERS:
        raise BinauraError(f"ambisonic order must be one of {ORDERS}, got {order!r}")
    return int(order)


def real_sh(order: int, azimuth_deg, elevation_deg) -> np.ndarray:
    """Real spherical harmonics (Q, (order + 1)^2), ACN order, N3D: mean of Y_a Y_b over the sphere = delta."""
    az = np.deg2rad(np.atleast_1d(np.asarray(azimuth_deg, dtype=np.float64)))
    sin_el = np.sin(np.deg2rad(np.atleast_1d(np.asarray(elevation_deg, dtype=np.float64))))
    out = np.zeros((len(az), (order + 1) ** 2))
    for n in range(order + 1):
        for m in range(-n, n + 1):
            # (-1)^m cancels scipy's Condon-Shortley phase
            legendre = (-1.0) ** abs(m) * lpmv(abs(m), n, sin_el)
            norm = np.sqrt((2 * n + 1) * (2.0 - (m == 0)) * _fact_ratio(n, abs(m)))
            trig = np.cos(m * az) if m >= 0 else np.sin(-m * az)
            out[:, n * n + n + m] = norm * legendre * trig
    return out


def _fact_ratio(n: int, m: int) -> float:
    """(n - m)! / (n + m)!"""
    return 1.0 / float(np.prod(np.arange(n - m + 1, n + m + 1, dtype=np.float64))) if m else 1.0


def circular_harmonics(order: int, azimuth_deg) -> np.ndarray:
    """2D ambisonics (Q, 2 order + 1): [1, sqrt2 cos(az), sqrt2 sin(az), ...] (mean-square normalised)."""
    az = np.deg2rad(np.atleast_1d(np.asarray(azimuth_deg, dtype=np.float64)))
    cols = [np.ones_like(az)]
    for m in range(1, order + 1):
        cols += [np.sqrt(2) * np.cos(m * az), np.sqrt(2) * np.sin(m * az)]
    return np.stack(cols, axis=1)


def lebedev26() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 26-point Lebedev grid: (azimuth_deg, elevation_deg, weights summing to 1)."""
    pts, w = [], []
    for i in range(3):
        for s in (1, -1):
            v = np.zeros(3)
            v[i] = s
            pts.append(v)
            w.append(1 / 21)
    a = 1 / np.sqrt(2)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        for si in (1, -1):
            for sj in (1, -1):
                v = np.zeros(3)
                v[i], v[j] = si * a, sj * a
                pts.append(v)
                w.append(4 / 105)
    b = 1 / np.sqrt(3)
    for sx in (1, -1):
        for sy in (1, -1):
            for sz in (1, -1):
                pts.append(np.array([sx, sy, sz]) * b)
                w.append(9 / 280)
    p = np.array(pts)
    return np.rad2deg(np.arctan2(p[:, 1], p[:, 0])), np.rad2deg(np.arcsin(np.clip(p[:, 2], -1, 1))), np.array(w)


class Decoder:
    """An order-N ambisonic encoder and virtual-loudspeaker decoder (3D, or 2D for horizontal heads)."""

    def __init__(self, order: int, horizontal: bool = False, max_re: bool = False):
        self.order, self.horizontal = _check_order(order), horizontal
        n = self.order
        if horizontal:
            count = 2 * n + 2
            self.speaker_az = np.arange(count) * 360.0 / count
            self.speaker_el = np.zeros(count)
            w = np.full(count, 1.0 / count)
            degrees = np.concatenate([[0], np.repeat(np.arange(1, n + 1), 2)])
            taper = np.cos(degrees * np.pi / (2 * n + 2)) if max_re else np.ones(len(degrees))
        else:
            self.speaker_az, self.speaker_el, w = lebedev26()
            degrees = np.concatenate([np.full(2 * k + 1, k) for k in range(n + 1)])
            x = np.cos(np.deg2rad(_MAX_RE_DEG / (n + 1.51)))
            taper = np.array([lpmv(0, int(k), x) for k in degrees]) if max_re else np.ones(len(degrees))
        self.speaker_az = np.mod(self.speaker_az + 180.0, 360.0) - 180.0
        # Sampling decoder: feed_l = w_l * sum_k taper_k Y_k(speaker_l) B_k
        self.matrix = w[:, None] * self.encode_gains(self.speaker_az, self.speaker_el) * taper[None, :]  # (L, K)

    def encode_gains(self, azimuth_deg, elevation_deg) -> np.ndarray:
        """(Q, K) encoding gains of directions."""
        if self.horizontal:
            return circular_harmonics(self.order, azimuth_deg)
        return real_sh(self.order, azimuth_deg, elevation_deg)

    def speaker_gains(self, azimuth_deg, elevation_deg) -> np.ndarray:
        """(Q, L) loudspeaker gains of a plane wave from each direction, encoded then decoded."""
        return self.encode_gains(azimuth_deg, elevation_deg) @ self.matrix.T


class AmbisonicHead:
    """A Head heard through order-N ambisonics; interpolate() returns decoded responses.

    Stands in for a Head in room.render_paths: aligned responses (Q, 2, taps')
    hold every loudspeaker's HRIR at its delay relative to the earliest one per
    ear, and delays (Q, 2) are those earliest delays.
    """

    def __init__(self, head: Head, order: int, max_re: bool = False):
        self.head, self.order = head, _check_order(order)
        self.decoder = Decoder(order, isinstance(head.base, HorizontalHrtfSet), max_re)
        self.name, self.base = head.name, head.base
        self.params = {**head.params, "ambisonic_order": self.order}
        aligned, delays = head.interpolate(self.decoder.speaker_az, self.decoder.speaker_el)
        self.ref_delays = delays.min(axis=0)  # (2,)
        rel = delays - self.ref_delays
        start = np.floor(rel).astype(int)
        shifted = fractional_shift(aligned, rel - start)  # (L, 2, taps + 1)
        self.responses = np.zeros((len(aligned), 2, HRIR_TAPS + 1 + int(start.max())), dtype=np.float32)
        for spk in range(len(aligned)):
            for ear in range(2):
                self.responses[spk, ear, start[spk, ear]:start[spk, ear] + shifted.shape[-1]] = shifted[spk, ear]

    @property
    def rate_hz(self) -> int:
        return self.head.rate_hz

    def interpolate(self, azimuth_deg, elevation_deg) -> tuple[np.ndarray, np.ndarray]:
        g = self.decoder.speaker_gains(azimuth_deg, elevation_deg).astype(np.float32)  # (Q, L)
        aligned = np.einsum("ql,lct->qct", g, self.responses)
        return aligned, np.broadcast_to(self.ref_delays, (len(g), 2)).copy()


def encode(dry: np.ndarray, decoder: Decoder, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Mono (T,) -> ambisonic signals (K, T)."""
    return decoder.encode_gains([azimuth_deg], [elevation_deg])[0][:, None] * dry[None, :]


def decode_binaural(ambi: np.ndarray, head: Head, decoder: Decoder, distance_m: float = 1.0) -> np.ndarray:
    """Ambisonic signals (K, T) -> binaural (2, T + taps): loudspeaker feeds through the head's HRIRs.

    The virtual loudspeakers stand at distance_m (a common delay and 1/r gain).
    """
    feeds = decoder.matrix @ ambi  # (L, T)
    n_spk = len(decoder.speaker_az)
    n_ir = int(distance_m / SPEED_OF_SOUND_M_S * head.rate_hz) + 2 * HRIR_TAPS
    out = None
    for spk in range(n_spk):
        ir = render_paths(head, decoder.speaker_az[spk:spk + 1], decoder.speaker_el[spk:spk + 1],
                          [distance_m], [1.0 / max(distance_m, 0.1)], n_ir)
        wet = oaconvolve(feeds[spk][None, :], ir, axes=1)
        out = wet if out is None else out + wet
    return out.astype(np.float32)


def render_ambisonic(dry: np.ndarray, head: Head, order: int, azimuth_deg: float, elevation_deg: float,
                     distance_m: float = 1.0, max_re: bool = False) -> np.ndarray:
    """A dry mono source (T,) at a direction through order-N ambisonics and a binaural decode: (2, T')."""
    decoder = Decoder(order, isinstance(head.base, HorizontalHrtfSet), max_re)
    return decode_binaural(encode(np.asarray(dry, np.float64), decoder, azimuth_deg, elevation_deg),
                           head, decoder, distance_m)
