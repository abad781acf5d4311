"""The classical localizer against synthetic ground truth."""

import numpy as np
import pytest

from agent.core.predictor import Clip
from agent.localize.gccphat import GccPhatLocalizer, itd_to_lateral_deg, woodworth_itd_s
from training.synth.room import anechoic_ir


def render(head, az, rate=48_000, seed=0):
    from scipy.signal import oaconvolve

    noise = np.random.default_rng(seed).standard_normal(rate)
    return oaconvolve(noise[None], anechoic_ir(head, az, 0.0, 2.0), axes=1).astype(np.float32)


def test_pure_delay_maps_to_the_left():
    rate = 48_000
    x = np.random.default_rng(0).standard_normal(rate)
    lag = 20  # right ear 20 samples late: the source is on the left
    audio = np.stack([x, np.r_[np.zeros(lag), x[:-lag]]]).astype(np.float32)
    est = GccPhatLocalizer().localize(Clip("t", audio, rate))
    assert est[0].azimuth_deg > 30
    assert itd_to_lateral_deg(woodworth_itd_s(np.deg2rad(40))) == pytest.approx(40, abs=0.5)


@pytest.mark.parametrize("az", [-60.0, 0.0, 30.0, 75.0])
def test_kemar_front_directions(kemar, az):
    from training.synth.heads import Head

    est = GccPhatLocalizer().localize(Clip("t", render(Head("kemar-mit", kemar), az), 48_000))
    assert est[0].azimuth_deg == pytest.approx(az, abs=20)


def test_cannot_tell_front_from_back(kemar):
    from training.synth.heads import Head

    est = GccPhatLocalizer().localize(Clip("t", render(Head("kemar-mit", kemar), 150.0), 48_000))
    assert est[0].azimuth_deg == pytest.approx(30.0, abs=20)  # the mirror image, in front
