import numpy as np
import pytest

from agent.core.audio import SPEED_OF_SOUND_M_S
from training.synth.heads import make_head
from training.synth.room import RoomGeometry, anechoic_ir, binaural_rir


def schroeder_rt60(ir, rate):
    e = (ir.astype(np.float64) ** 2).sum(axis=0)
    edc = np.cumsum(e[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(db < -5), np.argmax(db < -25)
    return (i25 - i5) / rate * 3.0  # T20 extrapolated to 60 dB


@pytest.fixture(scope="module")
def head():
    return make_head("kemar-mit", 48_000)


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_rir_decays_at_the_room_rt60(head, rt60):
    room = RoomGeometry((7.0, 5.0, 3.0), rt60, (3.0, 2.5, 1.5), 0.0)
    ir = binaural_rir(head, room, 45.0, 0.0, 2.0, np.random.default_rng(0))
    # High frequencies decay faster (air absorption), so the broadband T20 sits a little below.
    assert 0.7 * rt60 < schroeder_rt60(ir, 48_000) < 1.1 * rt60


def test_direct_sound_arrives_after_distance_over_c(head):
    ir = anechoic_ir(head, 0.0, 0.0, 3.43)
    first = np.argmax(np.abs(ir).max(axis=0) > 0.2 * np.abs(ir).max())
    expected = 3.43 / SPEED_OF_SOUND_M_S * 48_000  # 480 samples
    assert abs(first - expected - (head.base.delays[:, 0].min() - 8)) < 40


def test_head_frame_round_trip_in_the_room():
    room = RoomGeometry((6.0, 5.0, 3.0), 0.5, (2.0, 2.0, 1.5), 60.0)
    pos = room.to_room(30.0, 10.0, 1.5)
    az, el, d = room.to_head(pos)
    assert (float(az), float(el), float(d)) == pytest.approx((30.0, 10.0, 1.5))


def test_level_falls_with_distance_in_free_field(head):
    near = anechoic_ir(head, 0.0, 0.0, 1.0)
    far = anechoic_ir(head, 0.0, 0.0, 4.0)
    ratio_db = 10 * np.log10((near.astype(float) ** 2).sum() / (far.astype(float) ** 2).sum())
    assert ratio_db == pytest.approx(12.04, abs=0.5)  # 1/r: 6 dB per doubling
