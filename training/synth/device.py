"""The recording device a scene passes through: input level with a hot microphone's clipping,
and a low-rate ADC whose recording binaura then upsamples.

The encoder meets these on real boards and was never trained on them (issue 22):
- **Level.** Scenes are written at an output RMS drawn from a 10 dB window
  (`SynthConfig.output_rms_dbfs`) and scaled down whenever a peak would clip. A device's gain is
  not so polite. A share `p_device_level` of scenes takes its RMS from `device_rms_dbfs`
  instead (60 dB wide by default) and is *not* scaled back: whatever exceeds full scale is cut
  off at +-1, as the ADC does. Absolute level therefore carries no distance information in
  training; distance comes from the relative levels, the direct-to-reverberant ratio and the
  spectrum (docs/encoder.md says how distance is calibrated).
- **Sample rate.** A share `p_band_limited` of scenes is recorded at one of
  `band_limited_rates_hz` (default 16, 22.05 and 24 kHz): the binaural mix is resampled down
  (the ADC's anti-alias filter), rounded to 16 bits at that rate, and resampled back up with the
  runtime's own resampler (`agent.core.audio.resample_to`), exactly what `binaura ask` does with
  such a file. Nothing above the low rate's Nyquist frequency survives: no pinna cues there.

Both draws use their own generator (`scene_rng(seed, index, split + "/device")`), so a config
with both shares at 0 renders every scene bit-identically to before this module existed. The
drawn values are written in the scene's labels (`extra["device"]`) so benchmarks can report by
condition.
"""

from __future__ import annotations

import numpy as np

from agent.core.audio import resample_to
from agent.core.cues import FULL_BAND_MIN_RATE_HZ
from training.synth.ambisonics import AMBISONIC_ORDER_KEY

#: key of the device chain in a SceneSpec's and a Scene's `extra`
DEVICE_KEY = "device"
#: full scale of the written samples; a hot scene is cut off here
FULL_SCALE = 1.0
_INT16_STEP = 1.0 / 32768.0


def draw_device(cfg, rng: np.random.Generator) -> dict:
    """The device settings of one scene: {"rms_dbfs": x} for a level-drawn scene and
    {"rate_hz": r} for a band-limited one (either, both or neither; {} leaves the scene as
    before). cfg is a SynthConfig; rng the scene's own device generator."""
    out: dict = {}
    level = rng.random() < cfg.p_device_level
    rms = float(rng.uniform(*cfg.device_rms_dbfs))  # drawn always: one stream whatever the shares
    limited = rng.random() < cfg.p_band_limited
    rate = int(rng.choice(np.asarray(cfg.band_limited_rates_hz, dtype=np.int64)))
    if level:
        out["rms_dbfs"] = round(rms, 2)
    if limited:
        out["rate_hz"] = rate
    return out


def apply_level(mix: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale (2, T) audio to rms_dbfs (RMS over both ears) and clip at full scale, in place."""
    mix *= 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(mix.astype(np.float64) ** 2) + 1e-20)
    np.clip(mix, -FULL_SCALE, FULL_SCALE - _INT16_STEP, out=mix)
    return mix


def apply_low_rate(mix: np.ndarray, rate_hz: int, device_rate_hz: int) -> np.ndarray:
    """(2, T) audio at rate_hz as a device at device_rate_hz records it (anti-alias filter,
    16-bit rounding) and the runtime upsamples it back to rate_hz. Same length and dtype."""
    if device_rate_hz >= rate_hz:
        return mix
    low = resample_to(mix, rate_hz, device_rate_hz)
    low = np.clip(np.round(low / _INT16_STEP) * _INT16_STEP, -FULL_SCALE, FULL_SCALE - _INT16_STEP)
    up = resample_to(low.astype(np.float32), device_rate_hz, rate_hz)
    n = mix.shape[-1]
    if up.shape[-1] < n:
        up = np.pad(up, ((0, 0), (0, n - up.shape[-1])))
    out = up[:, :n].astype(np.float32)
    np.clip(out, -FULL_SCALE, FULL_SCALE - _INT16_STEP, out=out)  # the filter's overshoot on clipped input
    return out


def apply_device(mix: np.ndarray, device: dict, rate_hz: int) -> np.ndarray:
    """The scene's mix, already at its usual level, through the drawn device chain: the level
    (and clipping) first, as the microphone and ADC see the sound, then the low rate."""
    if "rms_dbfs" in device:
        mix = apply_level(mix, device["rms_dbfs"])
    if "rate_hz" in device:
        mix = apply_low_rate(mix, rate_hz, int(device["rate_hz"]))
    return mix


def carries_pinna_cues(extra: dict) -> bool:
    """Whether a scene (its labels' `extra`) can tell front from back by the pinna's spectral
    cues: not when recorded below FULL_BAND_MIN_RATE_HZ (agent/core/cues.py), nor through a first-order ambisonic
    renderer (which reproduces the field accurately only below about 700 Hz, far under the
    pinna's 5-16 kHz). The encoder's polar loss skips such scenes, as it skips the sphere head:
    trained on them it could only learn a prior."""
    rate = (extra.get(DEVICE_KEY) or {}).get("rate_hz")
    if rate is not None and rate < FULL_BAND_MIN_RATE_HZ:
        return False
    return extra.get(AMBISONIC_ORDER_KEY) != 1
