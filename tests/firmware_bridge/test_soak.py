"""Soak: emulated 48 kHz stereo s16 with 1% byte corruption, 0.5% drops and 100 ppm drift.

The full 10-minute run is behind the `slow` marker (make test-all, or
`binaura bench bridge --soak-seconds 600`); CI runs 60 s.
"""

import pytest

from firmware_bridge.soak import run_soak


def check(r):
    assert r["crashed"] is None
    assert r["audio_frames_lost"] > 0 and r["lost_not_in_a_gap"] == 0  # every gap reported
    assert r["sample_count_error"] < 1e-4
    assert r["drift_error_ppm"] < 10.0


def test_soak_60_s():
    check(run_soak(60.0))


@pytest.mark.slow
def test_soak_10_min():
    check(run_soak(600.0))
