import numpy as np
import pytest

from agent.core import geometry as g


def test_wrap_is_half_open_at_minus_180():
    assert g.wrap_azimuth_deg(-180.0) == 180.0
    assert g.wrap_azimuth_deg(270.0) == -90.0
    assert g.wrap_azimuth_deg(540.0) == 180.0


def test_left_is_plus_y():
    x, y, z = g.sph_to_cart(90.0, 0.0, 2.0)
    assert y == pytest.approx(2.0) and abs(x) < 1e-12 and abs(z) < 1e-12
    assert g.sph_to_cart(0.0, 90.0)[2] == pytest.approx(1.0)


def test_spherical_round_trip(rng):
    az, el, r = rng.uniform(-179, 180, 50), rng.uniform(-89, 89, 50), rng.uniform(0.1, 9, 50)
    a2, e2, r2 = g.cart_to_sph(g.sph_to_cart(az, el, r))
    np.testing.assert_allclose(a2, az, atol=1e-9)
    np.testing.assert_allclose(e2, el, atol=1e-9)
    np.testing.assert_allclose(r2, r, atol=1e-9)


def test_great_circle_known_angles():
    assert g.great_circle_deg(0, 0, 90, 0) == pytest.approx(90)
    assert g.great_circle_deg(170, 0, -170, 0) == pytest.approx(20)
    assert g.great_circle_deg(0, 90, 123, 90) == pytest.approx(0, abs=1e-6)
    assert g.great_circle_deg(0, 0, 180, 0) == pytest.approx(180)


def test_front_back_mirror_keeps_the_lateral_angle():
    for az in (30.0, -60.0, 135.0, 0.0):
        m = g.mirror_front_back_deg(az)
        assert g.lateral_angle_deg(m) == pytest.approx(g.lateral_angle_deg(az), abs=1e-9)
    assert g.mirror_front_back_deg(30.0) == pytest.approx(150.0)
    assert g.mirror_front_back_deg(0.0) == pytest.approx(180.0)


def test_sectors_and_turning():
    assert g.sector_of(0) == "front"
    assert g.sector_of(90) == "left"
    assert g.sector_of(-90) == "right"
    assert g.sector_of(180) == "back"
    assert g.sector_of(-150) == "back-right"
    assert g.sector_of(22.4) == "front" and g.sector_of(22.6) == "front-left"
    # Turning 90 deg to the left puts a source that was on the left straight ahead.
    assert g.rotate_listener_deg(90.0, 90.0) == pytest.approx(0.0)
    assert g.sector_of(g.rotate_listener_deg(0.0, 90.0)) == "right"


def test_bins():
    assert g.elevation_class(30) == "above" and g.elevation_class(-30) == "below"
    assert g.distance_bin(0.6) == "within 1 m" and g.distance_bin(4.0) == "beyond 3.5 m"
