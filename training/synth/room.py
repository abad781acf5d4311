"""Binaural room impulse responses: spatialised early reflections plus a diffuse late tail.

Early part: the image-source method for a shoebox (pyroomacoustics), each
image rendered through the head's HRTF from its own arrival direction, with
1/r spreading and the walls' reflection factors. Late part: two noise
channels given the head's diffuse-field spectrum and interaural coherence
(Habets & Gannot's mixing of independent noises), decaying at the room's RT60
(faster above 4 kHz, as air and walls absorb highs), with the statistical
level of a diffuse field: reflected power per second 4*pi*c/V * exp(-13.8 t/T60)
at a 1 m reference (Kuttruff, Room Acoustics, ch. 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy.fft import next_fast_len

from agent.core.audio import HEAD_RADIUS_M, SPEED_OF_SOUND_M_S
from agent.core.geometry import cart_to_sph, sph_to_cart
from training.synth.heads import Head
from training.synth.hrtf import HRIR_TAPS, PRE_ROLL, fractional_shift

#: RT60 multiplier of the band above HIGH_BAND_HZ.
HIGH_BAND_RT60_FACTOR = 0.7
HIGH_BAND_HZ = 4000.0
TAIL_FADE_IN_S = 0.01


@dataclass
class RoomGeometry:
    """A shoebox room with a listener; positions in metres in room coordinates."""

    size_m: tuple[float, float, float]
    rt60_s: float
    listener_m: tuple[float, float, float]
    yaw_deg: float  # listener's facing direction in the room, CCW from the room's +x
    max_order: int = 3

    def to_room(self, azimuth_deg, elevation_deg, distance_m) -> np.ndarray:
        """Head-frame direction and distance -> room position."""
        v = sph_to_cart(azimuth_deg, elevation_deg, distance_m)
        c, s = np.cos(np.deg2rad(self.yaw_deg)), np.sin(np.deg2rad(self.yaw_deg))
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        return np.asarray(self.listener_m) + v @ rot.T

    def to_head(self, pos_m: np.ndarray):
        """Room positions (..., 3) -> head-frame (azimuth_deg, elevation_deg, distance_m)."""
        v = np.asarray(pos_m) - np.asarray(self.listener_m)
        c, s = np.cos(np.deg2rad(self.yaw_deg)), np.sin(np.deg2rad(self.yaw_deg))
        rot = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
        return cart_to_sph(v @ rot.T)

    def contains(self, pos_m: np.ndarray, margin_m: float = 0.2) -> bool:
        p = np.asarray(pos_m)
        return bool(np.all(p >= margin_m) and np.all(p <= np.asarray(self.size_m) - margin_m))

    @property
    def volume_m3(self) -> float:
        return float(np.prod(self.size_m))


def sabine_absorption(size_m, rt60_s: float) -> float:
    """Wall energy absorption giving rt60_s by Sabine's formula: T = 24 ln10 V / (c S a)."""
    lx, ly, lz = size_m
    volume, surface = lx * ly * lz, 2 * (lx * ly + lx * lz + ly * lz)
    return 24 * np.log(10) * volume / (SPEED_OF_SOUND_M_S * surface * rt60_s)


def min_rt60_s(size_m, max_absorption: float = 0.95) -> float:
    """The shortest RT60 a shoebox of this size reaches with walls absorbing max_absorption."""
    return float(sabine_absorption(size_m, 1.0) / max_absorption)


def image_sources(room: RoomGeometry, source_m: np.ndarray):
    """Image positions (K, 3), amplitude factors (K,) and orders (K,), direct path first."""
    import pyroomacoustics as pra  # noqa: PLC0415  (C extension; import only where used)

    e_abs = float(np.clip(sabine_absorption(room.size_m, room.rt60_s), 0.01, 0.99))
    shoebox = pra.ShoeBox(list(room.size_m), fs=16000, materials=pra.Material(e_abs),
                          max_order=room.max_order, air_absorption=False)
    shoebox.add_source(list(source_m))
    shoebox.add_microphone(list(room.listener_m))
    shoebox.image_source_model()
    src = shoebox.sources[0]
    vis = shoebox.visibility[0][0].astype(bool)
    images = src.images.T[vis]
    damping = src.damping[0][vis]
    orders = src.orders[vis]
    order = np.argsort(orders, kind="stable")
    return images[order], damping[order], orders[order]


def render_paths(head: Head, azimuth_deg, elevation_deg, distance_m, gains, n_out: int,
                 near_field: np.ndarray | None = None) -> np.ndarray:
    """Sum of propagation paths through the head: (2, n_out) impulse response.

    Each path arrives from (azimuth, elevation) after distance/c with amplitude
    gain; its interpolated HRIR is placed at the path delay plus each ear's
    onset delay (fractional parts applied exactly).
    """
    rate = head.rate_hz
    aligned, ear_delays = head.interpolate(azimuth_deg, elevation_deg)
    path_delay = np.asarray(distance_m) / SPEED_OF_SOUND_M_S * rate
    total = path_delay[:, None] + ear_delays - PRE_ROLL  # onset sits at PRE_ROLL in aligned
    total = np.maximum(total, 0.0)
    start = np.floor(total).astype(int)
    shifted = fractional_shift(aligned, total - start)  # (Q, 2, taps + 1)
    g = np.asarray(gains, dtype=np.float32)[:, None, None]
    if near_field is not None:
        g = g * near_field[:, :, None]
    shifted = shifted * g
    out = np.zeros((2, n_out), dtype=np.float32)
    taps = shifted.shape[-1]
    for q in range(len(start)):
        for ear in range(2):
            s = start[q, ear]
            if s >= n_out:
                continue
            m = min(taps, n_out - s)
            out[ear, s:s + m] += shifted[q, ear, :m]
    return out


def near_field_gains(azimuth_deg: float, elevation_deg: float, distance_m: float) -> np.ndarray:
    """Per-ear 1/r correction of a close source relative to the head centre: (1, 2)."""
    src = sph_to_cart(azimuth_deg, elevation_deg, distance_m)
    ears = np.array([[0.0, HEAD_RADIUS_M, 0.0], [0.0, -HEAD_RADIUS_M, 0.0]])
    r_ear = np.linalg.norm(src[None, :] - ears, axis=1)
    # Only the level part of parallax: the far-field HRIR already holds the shadowing.
    return (distance_m / np.maximum(r_ear, 0.05))[None, :].astype(np.float32)


def diffuse_pair_spectra(head: Head, rng: np.random.Generator, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Spectra (2, n_fft // 2 + 1) of two unit-variance white noises given the head's
    diffuse-field interaural coherence by Cholesky mixing (Habets & Gannot).

    Drawn directly in the frequency domain (no forward FFT). Returns (freqs_hz, spectra).
    """
    freqs_h, coh_h = head.base.diffuse_coherence
    f = np.fft.rfftfreq(n_fft, 1.0 / head.rate_hz)
    coh = np.interp(f, freqs_h, coh_h)
    a, b = (np.sqrt(n_fft / 2, dtype=np.float32) * (rng.standard_normal(len(f), dtype=np.float32)
                                                      + 1j * rng.standard_normal(len(f), dtype=np.float32))
            for _ in range(2))
    return f, np.stack([a, coh * a + np.sqrt(np.maximum(1.0 - coh**2, 0.0)) * b])


def late_tail(head: Head, rng: np.random.Generator, rt60_s: float, volume_m3: float,
              start_s: float, n_out: int) -> np.ndarray:
    """Diffuse binaural reverberation (2, n_out) starting at start_s after emission."""
    rate = head.rate_hz
    n = next_fast_len(n_out, real=True)
    f, pair = diffuse_pair_spectra(head, rng, n)
    both = (pair * np.interp(f, head.base.diffuse_coherence[0], head.base.diffuse_field_magnitude)).astype(np.complex64)
    t = np.arange(n_out) / rate
    ramp = np.clip((t - start_s) / TAIL_FADE_IN_S, 0.0, 1.0)
    # Reflected power per second (1 m reference) and per sample; white noise has unit power.
    level = np.sqrt(4 * np.pi * SPEED_OF_SOUND_M_S / volume_m3 / rate)
    env_lo = (level * ramp * np.exp(-6.908 * t / rt60_s)).astype(np.float32)  # 60 dB over rt60
    env_hi = (level * ramp * np.exp(-6.908 * t / (rt60_s * HIGH_BAND_RT60_FACTOR))).astype(np.float32)
    hi = f >= HIGH_BAND_HZ
    lo_part = sfft.irfft(np.where(hi, 0, both), n, axis=-1)[:, :n_out]
    hi_part = sfft.irfft(np.where(hi, both, 0), n, axis=-1)[:, :n_out]
    out = (lo_part * env_lo + hi_part * env_hi).astype(np.float32)
    return out


def binaural_rir(head: Head, room: RoomGeometry, azimuth_deg: float, elevation_deg: float,
                 distance_m: float, rng: np.random.Generator) -> np.ndarray:
    """(2, T) binaural room impulse response of one source (direct + early + late)."""
    rate = head.rate_hz
    src = room.to_room(azimuth_deg, elevation_deg, distance_m)
    images, damping, orders = image_sources(room, src)
    az, el, dist = room.to_head(images)
    gains = damping / np.maximum(dist, 0.1)
    direct = orders == 0
    gains[direct] = 1.0 / max(distance_m, 0.1)
    nf = np.ones((len(gains), 2), dtype=np.float32)
    nf[direct] = near_field_gains(azimuth_deg, elevation_deg, distance_m)
    last = orders == orders.max()
    tail_start_s = float(np.median(dist[last]) / SPEED_OF_SOUND_M_S) if last.any() else 0.02
    n_out = int((tail_start_s + room.rt60_s * 1.05) * rate) + HRIR_TAPS
    early = render_paths(head, az, el, dist, gains, n_out, near_field=nf)
    return early + late_tail(head, rng, room.rt60_s, room.volume_m3, tail_start_s, n_out)


def anechoic_ir(head: Head, azimuth_deg: float, elevation_deg: float, distance_m: float) -> np.ndarray:
    """(2, T) free-field response: the HRIR at the distance's delay with 1/r spreading."""
    n_out = int(distance_m / SPEED_OF_SOUND_M_S * head.rate_hz) + 2 * HRIR_TAPS
    return render_paths(head, [azimuth_deg], [elevation_deg], [distance_m],
                        [1.0 / max(distance_m, 0.1)], n_out,
                        near_field=near_field_gains(azimuth_deg, elevation_deg, distance_m))
