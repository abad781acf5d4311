"""Head conditions: the measured KEMAR, its variations, and an analytic spherical head.

A model trained on one head fails on others, so training scenes draw a head
per scene (see docs/heads.md):
- ``kemar-mit``: the measured MIT KEMAR set;
- ``kemar-var``: KEMAR with ITD scaling (head size, x0.90..1.08), pinna
  frequency scaling (x0.94..1.05) and a smooth, direction-dependent spectral
  perturbation (about +-2 dB per ear);
- ``sphere``: a rigid sphere (Brown & Duda 1998 head-shadow filter and the
  Woodworth delay), radius 7.5..9.5 cm, no pinna.
Held out of training, used only by the benchmark:
- ``kemar-xl``: KEMAR scaled as a larger head and pinna (ITD x1.12, frequency
  x1.12), outside every training range.
For evaluation only (never in a training config):
- ``kemar@S``: KEMAR scaled by S (ITD and frequency, 0.7 <= S <= 1.5), the
  heads of a head-size calibration study (``kemar@1.12`` is ``kemar-xl``).
Measured heads fetched at set-up (measured_heads.py; `make heads`), named in a
config to use them:
- ``ic-subject1``, ``fabian``, ``kemar-tub`` and their variations
  ``<name>-var`` (the variation of kemar-var applied to that head): training;
  ``fabian`` and ``kemar-tub`` are horizontal-plane sets, so their labelled
  sources are drawn at elevation 0 (label_elevation_deg).
- ``ic-subject2``: the benchmark's held-out human head, never in training.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from agent.core.audio import SPEED_OF_SOUND_M_S
from agent.core.geometry import sph_to_cart
from training.synth.hrtf import HRIR_TAPS, PRE_ROLL, HrtfSet, align_hrirs, load_kemar
from training.synth.measured_heads import MEASURED, load_measured

TRAIN_HEADS = ("kemar-mit", "kemar-var", "sphere")
HELD_OUT_HEADS = ("kemar-xl",)
#: kemar-xl is KEMAR scaled by this (ITD and frequency), outside every training range
HELD_OUT_SCALE = 1.12
ALL_HEADS = TRAIN_HEADS + HELD_OUT_HEADS
#: name prefix of a KEMAR scaled by any factor in SCALED_RANGE, for evaluation only
SCALED_KEMAR = "kemar@"
SCALED_RANGE = (0.7, 1.5)
#: measured heads (fetched at set-up) that training configs may name, each also as "<name>-var"
MEASURED_TRAIN_HEADS = ("ic-subject1", "fabian", "kemar-tub")
#: the benchmark's held-out human head: refused in training configs, as kemar-xl is
HELD_OUT_HUMAN_HEADS = ("ic-subject2",)
VARIATION_SUFFIX = "-var"
MEASURED_HEAD_NAMES = (MEASURED_TRAIN_HEADS + tuple(h + VARIATION_SUFFIX for h in MEASURED_TRAIN_HEADS)
                       + HELD_OUT_HUMAN_HEADS)


def scaled_kemar_factor(name: str) -> float | None:
    """S for a head named ``kemar@S`` inside SCALED_RANGE, else None."""
    if not name.startswith(SCALED_KEMAR):
        return None
    try:
        s = float(name[len(SCALED_KEMAR):])
    except ValueError:
        return None
    return s if SCALED_RANGE[0] <= s <= SCALED_RANGE[1] else None


def is_head_name(name: str) -> bool:
    return name in ALL_HEADS or name in MEASURED_HEAD_NAMES or scaled_kemar_factor(name) is not None


def allowed_in_training(name: str) -> bool:
    """False for the held-out heads (kemar-xl, ic-subject2) and the evaluation-only kemar@S."""
    return is_head_name(name) and name not in HELD_OUT_HEADS + HELD_OUT_HUMAN_HEADS \
        and not name.startswith(SCALED_KEMAR)


def measured_base_name(name: str) -> str | None:
    """The measured set behind a head name (``fabian-var`` -> ``fabian``), else None."""
    base = name[: -len(VARIATION_SUFFIX)] if name.endswith(VARIATION_SUFFIX) else name
    return base if base in MEASURED and name in MEASURED_HEAD_NAMES else None


def is_horizontal_only(name: str) -> bool:
    base = measured_base_name(name)
    return base is not None and MEASURED[base].horizontal_only


def label_elevation_deg(name: str, elevation_deg: tuple[float, float]) -> tuple[float, float]:
    """The elevation range labelled sources are drawn from with this head.

    A horizontal-plane head has no elevation cues: its sources sit at 0 deg,
    whatever the config's range (which must then contain 0, see SynthConfig).
    Every other head keeps the config's range.
    """
    return (0.0, 0.0) if is_horizontal_only(name) else tuple(elevation_deg)


@dataclass
class Head:
    """An HRTF set plus per-head transforms applied to interpolated HRIRs.

    itd_scale scales the interaural part of the onset delays; freq_scale > 1
    stretches the aligned HRIRs in time (spectral features move down, as for a
    larger pinna); eq_coef (2 ears, 4 directional terms, n_basis) is a smooth
    spectral perturbation in dB over log frequency.
    """

    name: str
    base: HrtfSet
    itd_scale: float = 1.0
    freq_scale: float = 1.0
    eq_coef: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    @property
    def rate_hz(self) -> int:
        return self.base.rate_hz

    def interpolate(self, azimuth_deg, elevation_deg) -> tuple[np.ndarray, np.ndarray]:
        """(aligned (Q, 2, taps) float32, delays (Q, 2) samples) for query directions."""
        aligned, delays = self.base.interpolate(azimuth_deg, elevation_deg)
        if self.itd_scale != 1.0:
            mid = delays.mean(axis=1, keepdims=True)
            delays = mid + (delays - mid) * self.itd_scale
        if self.freq_scale != 1.0:
            t = np.arange(HRIR_TAPS, dtype=np.float64)
            src_t = PRE_ROLL + (t - PRE_ROLL) / self.freq_scale
            lo = np.clip(np.floor(src_t).astype(int), 0, HRIR_TAPS - 2)
            frac = np.clip(src_t - lo, 0.0, 1.0).astype(np.float32)
            aligned = aligned[..., lo] * (1 - frac) + aligned[..., lo + 1] * frac
        if self.eq_coef is not None:
            aligned = self._perturb(aligned, azimuth_deg, elevation_deg)
        return aligned.astype(np.float32), delays

    def _perturb(self, aligned, az, el):
        n_fft = 2 * HRIR_TAPS
        f = np.fft.rfftfreq(n_fft, 1.0 / self.rate_hz)
        logf = np.log2(np.maximum(f, 100.0) / 100.0) / np.log2(self.rate_hz / 200.0)  # 0..1
        basis = np.cos(np.pi * np.outer(np.arange(self.eq_coef.shape[-1]), logf))  # (B, F)
        d = np.atleast_2d(sph_to_cart(az, el))  # (Q, 3)
        dirs = np.concatenate([np.ones((len(d), 1)), d], axis=1)  # (Q, 4)
        gain_db = np.einsum("qk,ekb,bf->qef", dirs, self.eq_coef, basis)
        spec = np.fft.rfft(aligned, n_fft, axis=-1) * 10 ** (gain_db / 20)
        return np.fft.irfft(spec, n_fft, axis=-1)[..., :HRIR_TAPS]


def spherical_head_set(rate_hz: int, radius_m: float = 0.0875, ear_azimuth_deg: float = 100.0) -> HrtfSet:
    """HRIRs of a rigid sphere on a 10-degree grid (Brown & Duda 1998).

    Head shadow per ear: H(w, theta) = (1 + j a(theta) w / 2w0) / (1 + j w / 2w0),
    w0 = c / radius, a(theta) = 1.05 + 0.95 cos(theta * 180 / 150 deg); delay
    from Woodworth's formula on the incidence angle theta to each ear.
    """
    els = np.arange(-80, 90, 10.0)
    az_list, el_list = [0.0], [90.0]
    az_list.append(0.0)
    el_list.append(-90.0)
    for e in els:
        k = max(int(round(36 * np.cos(np.deg2rad(e)))), 4)
        for a in np.arange(k) * 360.0 / k:
            az_list.append(a if a <= 180 else a - 360)
            el_list.append(e)
    az, el = np.array(az_list), np.array(el_list)
    src = sph_to_cart(az, el)
    n_fft = 1024
    w = 2 * np.pi * np.fft.rfftfreq(n_fft, 1.0 / rate_hz)
    w0 = SPEED_OF_SOUND_M_S / radius_m
    raw = np.zeros((len(az), 2, n_fft))
    offset_s = 0.002  # keep every delay positive
    for ear, ear_az in enumerate((ear_azimuth_deg, -ear_azimuth_deg)):
        ear_dir = sph_to_cart(ear_az, 0.0)
        theta = np.arccos(np.clip(src @ ear_dir, -1, 1))  # incidence angle, rad
        alpha = 1.05 + 0.95 * np.cos(theta * 180.0 / 150.0)
        delay = np.where(theta < np.pi / 2, -np.cos(theta), theta - np.pi / 2) * radius_m / SPEED_OF_SOUND_M_S
        h = (1 + 1j * alpha[:, None] * w / (2 * w0)) / (1 + 1j * w / (2 * w0))
        h = h * np.exp(-1j * w * (delay[:, None] + offset_s))
        raw[:, ear] = np.fft.irfft(h, n_fft, axis=-1)
    aligned, delays = align_hrirs(raw)
    return HrtfSet(f"sphere-{radius_m * 100:.1f}cm", rate_hz, az, el, aligned, delays)


@functools.lru_cache(maxsize=8)
def _sphere(rate_hz: int, radius_cm: float) -> HrtfSet:
    return spherical_head_set(rate_hz, radius_cm / 100.0)


def make_head(name: str, rate_hz: int, rng: np.random.Generator | None = None) -> Head:
    """Build a head condition by name; rng draws the variation of kemar-var and sphere."""
    rng = rng if rng is not None else np.random.default_rng(0)
    if name == "kemar-mit":
        return Head(name, load_kemar(rate_hz))
    if name == "kemar-var":
        return _varied(name, load_kemar(rate_hz), rng)
    base = measured_base_name(name)
    if base is not None:
        hrtf = load_measured(base, rate_hz)
        return _varied(name, hrtf, rng) if name.endswith(VARIATION_SUFFIX) else Head(name, hrtf)
    if name == "sphere":
        radius_cm = float(np.round(rng.uniform(7.5, 9.5) * 2) / 2)  # 0.5 cm steps keep the cache small
        return Head(name, _sphere(rate_hz, radius_cm), params={"radius_cm": radius_cm})
    scale = HELD_OUT_SCALE if name == "kemar-xl" else scaled_kemar_factor(name)
    if scale is not None:  # KEMAR scaled as a whole: delays and pinna features alike
        return Head(name, load_kemar(rate_hz), scale, scale, params={"itd_scale": scale, "freq_scale": scale})
    raise ValueError(f"unknown head {name!r}; expected one of {ALL_HEADS + MEASURED_HEAD_NAMES} or "
                     f"{SCALED_KEMAR}S with {SCALED_RANGE[0]} <= S <= {SCALED_RANGE[1]}")


def _varied(name: str, hrtf: HrtfSet, rng: np.random.Generator) -> Head:
    """A per-scene random head around a measured set: ITD x0.90..1.08 (head size), frequency
    x0.94..1.05 (pinna size) and a smooth direction-dependent spectral perturbation."""
    itd, fs = rng.uniform(0.90, 1.08), rng.uniform(0.94, 1.05)
    eq = rng.normal(0.0, 1.0, (2, 4, 6)) * np.array([1.0, 0.6, 0.6, 0.6])[None, :, None]
    return Head(name, hrtf, itd, fs, eq, {"itd_scale": round(itd, 3), "freq_scale": round(fs, 3)})
