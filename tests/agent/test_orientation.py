"""Orientation input: bad samples are refused with a clear warning; the last good one is held
for a bounded time, then the agent falls back to head-frame mode and says so."""

import io

import numpy as np
import pytest

from agent.core.errors import BinauraError, ConfigError
from agent.core.geometry import cart_to_sph, sph_to_cart
from agent.core.rotation import matrix_to_ypr, quat_from_ypr, quat_to_matrix, to_head, ypr_to_matrix
from agent.track.orientation import OrientationConfig, OrientationInput


def yaw_of(pose) -> float:
    return float(matrix_to_ypr(pose.matrix)[0])


def texts(o):
    return [t for _, t in o.take_warnings()]


def test_angles_and_quaternions_mean_the_same_rotation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, p, r = rng.uniform(-179, 179), rng.uniform(-89, 89), rng.uniform(-179, 179)
        m = ypr_to_matrix(y, p, r)
        np.testing.assert_allclose(quat_to_matrix(quat_from_ypr(y, p, r)), m, atol=1e-12)
        np.testing.assert_allclose(matrix_to_ypr(m), (y, p, r), atol=1e-9)
    # head turned 40 deg left: a source at world 150 is heard at 110; nose up 20: ahead is heard 20 below
    assert cart_to_sph(to_head(ypr_to_matrix(40.0), sph_to_cart(150.0, 0.0)))[0] == pytest.approx(110.0)
    assert cart_to_sph(to_head(ypr_to_matrix(0.0, 20.0), sph_to_cart(0.0, 0.0)))[1] == pytest.approx(-20.0)


def test_samples_are_interpolated_between_and_held_after():
    o = OrientationInput()
    assert o.push(0.0, 0.0) and o.push(1.0, 40.0)
    assert yaw_of(o.at(0.5)) == pytest.approx(20.0, abs=1e-6)  # slerp halfway
    pose = o.at(1.3)
    assert pose.mode == "world" and yaw_of(pose) == pytest.approx(40.0) and pose.age_s == pytest.approx(0.3)
    assert texts(o) == []


def test_out_of_order_future_and_non_unit_samples_are_refused_with_a_warning():
    o = OrientationInput()
    o.push(1.0, 10.0)
    o.at(1.0)  # the stream clock is at 1.0 s
    assert not o.push(0.5, 99.0)
    assert not o.push(9.0, 99.0)
    assert not o.push(1.05, quaternion=[1.5, 0.0, 0.0, 0.0])
    assert not o.push(1.06, float("nan"))
    warned = texts(o)
    assert "out of order" in warned[0] and "the last one was at 1.000 s" in warned[0]
    assert "from the future" in warned[1] and "the stream is at 1.000 s" in warned[1]
    assert "quaternion norm 1.500, expected 1 +- 0.05" in warned[2]
    assert "finite" in warned[3]
    assert yaw_of(o.at(1.1)) == pytest.approx(10.0)  # the last good value stands
    # a slightly-off quaternion is normalised and kept
    assert o.push(1.2, quaternion=1.02 * quat_from_ypr(30.0))
    assert yaw_of(o.at(1.2)) == pytest.approx(30.0)
    assert o.counters["orientation_refused"] == 4 and o.counters["orientation_samples"] == 2


def test_repeated_refusals_are_said_once_per_interval_with_a_count():
    o = OrientationInput(OrientationConfig(warn_every_s=5.0))
    o.push(1.0, 0.0)
    o.at(1.0)
    for _ in range(10):
        o.push(0.5, 0.0)
    o.at(7.0)
    o.push(0.6, 0.0)
    warned = [t for t in texts(o) if "out of order" in t]
    assert len(warned) == 2 and "(9 more like it since the last warning)" in warned[1]


def test_missing_samples_hold_then_fall_back_then_resume_afresh():
    o = OrientationInput(OrientationConfig(hold_s=0.5, fallback_s=2.0))
    o.push(0.0, 25.0)
    assert o.at(0.4).mode == "world"
    held = o.at(1.0)
    assert held.mode == "held" and yaw_of(held) == pytest.approx(25.0)
    lost = o.at(2.5)
    assert lost.mode == "fallback" and lost.matrix is None
    o.push(2.6, 30.0)
    back = o.at(2.6)
    assert back.mode == "world" and back.epoch == lost.epoch + 1  # a new world frame
    w = texts(o)
    assert "holding the last one (yaw 25 deg)" in w[0]
    assert "tracking in the head frame; front and back are not resolved" in w[1]
    assert "world-frame tracking resumes" in w[2]
    assert o.counters["orientation_fallbacks"] == 1


def test_no_orientation_ever_is_said_once_fallback_time_has_passed():
    o = OrientationInput()
    assert o.at(0.5).mode == "none" and texts(o) == []
    assert o.at(2.5).mode == "fallback" and "none received" in texts(o)[0]


def test_json_lines_from_a_script():
    o = OrientationInput()
    lines = io.StringIO('{"t_s": 0.0, "yaw_deg": 10}\nnot json\n{"t_s": 0.1, "quaternion": [1, 0, 0, 0]}\n'
                        '{"yaw_deg": 5}\n')
    o.follow(lines, clock=lambda: 0.2).join(timeout=5)
    assert o.counters["orientation_samples"] == 3 and o.counters["orientation_refused"] == 1
    assert "orientation line refused" in texts(o)[0]
    assert yaw_of(o.at(0.2)) == pytest.approx(5.0)
    with pytest.raises(BinauraError, match="expected"):
        o.push_json({"t_s": 1.0})


def test_config_names_every_bad_value():
    with pytest.raises(ConfigError) as e:
        OrientationConfig(hold_s=-1.0, fallback_s=-2.0, unit_tolerance=2.0).validate()
    assert len(e.value.problems) == 3
