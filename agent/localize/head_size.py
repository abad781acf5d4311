"""How large is the listening head? Head-size calibration from one recording.

The encoder learnt KEMAR's head; a robot head, a headset on another person or
a hearing device on a child is larger or smaller, and its interaural delays
and pinna features are scaled with it. Told the head's size over KEMAR's
(`head_scale`), the runtime warps its features to match (agent.core.features).

To measure it: record a broadband sound (noise, speech, music; a few seconds)
from a known direction off to one side, 60-120 deg from straight ahead, in a
quiet room, at about 1 m. Its interaural delay (GCC-PHAT over 150-1500 Hz,
summed over the active frames, refined between lags by a parabola) divided by KEMAR's for that azimuth under
the same estimator (KEMAR_ITD_S, tabulated from the MIT KEMAR set and checked
against it in tests/training/test_head_size.py) is the head scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.core.audio import check_binaural
from agent.core.errors import AudioFormatError, BinauraError
from agent.core.features import HEAD_SCALE_RANGE
from agent.localize.gccphat import GccPhatConfig, active_phat, summed_gcc

#: the estimator: 40 ms frames, lags up to +-2 ms (a head up to about twice KEMAR's), and only the
#: band where the delay is one number: above it the pinna and diffraction make it depend on frequency
ITD_CONFIG = GccPhatConfig(max_itd_s=0.002, upsample=8, active_db=-20.0)
ITD_BAND_HZ = (150.0, 1500.0)
#: azimuths (deg, elevation 0) the reference covers; nearer the median plane the delay is too small
#: to scale reliably
CALIBRATION_AZIMUTHS_DEG = (60.0, 120.0)
#: a GCC peak less clear than this (peak over the curve's mean absolute value) is refused: in
#: rooms, reflections that blur it also pull the delay toward zero (2 m away at RT60 0.7 s the
#: ratio was 2.6 and the scale read 10% low; 1 m away 4.6-5.5 and within 1%)
MIN_PEAK_RATIO = 4.0
#: KEMAR's interaural delay (s) at elevation 0 under ITD_CONFIG, azimuth 60..120 deg in 5-deg steps,
#: the left ear leading (binaura's azimuth grows to the left); mirrored azimuths give minus these
KEMAR_ITD_AZIMUTH_DEG = tuple(float(a) for a in range(60, 125, 5))
KEMAR_ITD_S = (607.40e-6, 640.87e-6, 665.14e-6, 682.85e-6, 694.95e-6, 702.08e-6, 703.61e-6, 702.87e-6,
               695.73e-6, 683.38e-6, 664.14e-6, 636.27e-6, 595.77e-6)


@dataclass
class HeadScaleEstimate:
    head_scale: float
    itd_s: float
    reference_itd_s: float
    azimuth_deg: float
    peak_ratio: float  # the GCC peak over the curve's mean absolute value: how clear the delay was

    def to_json(self) -> dict:
        return {"head_scale": round(self.head_scale, 4), "itd_us": round(self.itd_s * 1e6, 1),
                "kemar_itd_us": round(self.reference_itd_s * 1e6, 1), "azimuth_deg": self.azimuth_deg,
                "peak_ratio": round(self.peak_ratio, 2)}


def interaural_delay_s(audio: np.ndarray, rate_hz: int, where: str = "audio") -> tuple[float, float]:
    """The dominant interaural delay of a binaural recording, in seconds (> 0: the left ear leads),
    and the clarity of its GCC peak (peak over mean absolute value of the curve)."""
    audio = check_binaural(audio, rate_hz, where)
    n = int(ITD_CONFIG.frame_s * rate_hz)
    if audio.shape[1] < 10 * n:
        raise AudioFormatError(f"{where}: {audio.shape[1] / rate_hz:.2f} s is too short to measure an interaural "
                               f"delay; expected at least {10 * ITD_CONFIG.frame_s:.1f} s of sound")
    _, phat = active_phat(audio.astype(np.float64), rate_hz, ITD_CONFIG)
    freqs = np.fft.rfftfreq(2 * n, 1.0 / rate_hz)
    phat = phat * ((freqs >= ITD_BAND_HZ[0]) & (freqs <= ITD_BAND_HZ[1]))
    lags, curve = summed_gcc(phat, n, rate_hz, ITD_CONFIG)
    p = int(np.argmax(curve))
    frac = 0.0
    if 0 < p < len(curve) - 1:  # parabola through the peak and its neighbours
        a, b, c = curve[p - 1], curve[p], curve[p + 1]
        den = a - 2 * b + c
        frac = 0.5 * (a - c) / den if den < 0 else 0.0
    step = 1.0 / (rate_hz * ITD_CONFIG.upsample)
    return float((lags[p] + frac) * step), float(curve[p] / (np.mean(np.abs(curve)) + 1e-12))


def kemar_itd_s(azimuth_deg: float) -> float:
    """KEMAR's delay under the same estimator for a source at this azimuth (elevation 0)."""
    az = float(azimuth_deg)
    side = 1.0 if az > 0 else -1.0
    lateral = abs(az)
    lo, hi = CALIBRATION_AZIMUTHS_DEG
    if not lo <= lateral <= hi:
        raise BinauraError(f"calibration azimuth must be {lo:g}..{hi:g} deg to either side (+ left, - right), "
                           f"got {azimuth_deg:g}: nearer straight ahead or behind the delay is too small to scale")
    return side * float(np.interp(lateral, KEMAR_ITD_AZIMUTH_DEG, KEMAR_ITD_S))


def estimate_head_scale(audio: np.ndarray, rate_hz: int, azimuth_deg: float = 90.0,
                        where: str = "audio") -> HeadScaleEstimate:
    """head_scale from a recording of one broadband source at azimuth_deg (elevation about 0)."""
    ref = kemar_itd_s(azimuth_deg)
    itd, clarity = interaural_delay_s(audio, rate_hz, where)
    if clarity < MIN_PEAK_RATIO:
        raise BinauraError(f"{where}: no clear interaural delay (GCC peak ratio {clarity:.1f}, expected >= "
                           f"{MIN_PEAK_RATIO:g}): record one broadband sound about 1 m away, in a quieter, "
                           f"less reverberant place")
    if np.sign(itd) != np.sign(ref):
        raise BinauraError(f"{where}: the sound reached the {'left' if itd > 0 else 'right'} ear first, but "
                           f"azimuth {azimuth_deg:g} deg is on the {'left' if ref > 0 else 'right'} (binaura's "
                           f"azimuth grows to the left); check the channel order (left first) or the azimuth")
    scale = itd / ref
    if not HEAD_SCALE_RANGE[0] <= scale <= HEAD_SCALE_RANGE[1]:
        raise BinauraError(f"{where}: measured head scale {scale:.2f} is outside {list(HEAD_SCALE_RANGE)}; "
                           f"expected one broadband source at {azimuth_deg:g} deg in a quiet room")
    return HeadScaleEstimate(float(scale), itd, ref, float(azimuth_deg), clarity)
