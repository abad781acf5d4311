"""A head-size calibration recording for any synthesized head: three seconds of white noise
from one direction, anechoic, 1 m away (the input `binaura calibrate head` expects).

    python -m training.synth.calibration --head kemar-xl --azimuth 90 --out out/calib/kemar-xl.wav
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.signal import oaconvolve

from agent.core.audio import SAMPLE_RATE_HZ
from agent.core.dataset import write_wav
from training.synth.heads import make_head
from training.synth.room import anechoic_ir


def calibration_recording(head: str, azimuth_deg: float = 90.0, seconds: float = 3.0,
                          rate_hz: int = SAMPLE_RATE_HZ, seed: int = 0) -> np.ndarray:
    """(2, T) float32: white noise through the head's response at (azimuth_deg, 0), 1 m."""
    x = np.random.default_rng(seed).standard_normal(int(seconds * rate_hz))
    ir = anechoic_ir(make_head(head, rate_hz, np.random.default_rng(seed)), azimuth_deg, 0.0, 1.0)
    return (0.05 * oaconvolve(x[None], ir, axes=1)[:, :len(x)]).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m training.synth.calibration", description=__doc__.split("\n")[0])
    p.add_argument("--head", required=True, help="a head name (docs/heads.md), e.g. kemar-xl or kemar@1.2")
    p.add_argument("--azimuth", type=float, default=90.0)
    p.add_argument("--out", required=True, help="wav to write (int16, 48 kHz)")
    a = p.parse_args(argv)
    try:
        audio = calibration_recording(a.head, a.azimuth)
    except ValueError as e:  # an unknown head name: say which exist
        p.error(str(e))
    write_wav(a.out, audio, SAMPLE_RATE_HZ)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
