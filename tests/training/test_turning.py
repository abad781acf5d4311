"""Scenes with a moving head: the time-varying render has no artefact and follows the head."""

import numpy as np
import pytest
from scipy.signal import butter, oaconvolve, sosfilt

from agent.core.rotation import HeadPath, head_path_from_json
from agent.core.scene import scene_from_json
from training.synth import turning as turning_mod
from training.synth.heads import make_head
from training.synth.room import RoomGeometry, anechoic_ir, binaural_rir
from training.synth.turning import (
    KEY_HOP_S,
    PATH_KINDS,
    render_turning_source,
    sample_head_path,
    simplify,
    time_varying_convolve,
)

RATE = 16_000


@pytest.fixture(scope="module")
def head():
    return make_head("sphere", RATE, np.random.default_rng(0))  # analytic: fast, no download


def noise(seconds: float, seed: int = 0, lowpass_hz: float | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    if lowpass_hz:
        x = sosfilt(butter(8, lowpass_hz, fs=RATE, output="sos"), x)
    return (x / x.std()).astype(np.float32)


def yaw_path(times, yaws) -> HeadPath:
    t = np.asarray(times, dtype=float)
    return HeadPath(t, np.asarray(yaws, dtype=float), np.zeros(len(t)), np.zeros(len(t)))


def test_a_still_head_renders_exactly_as_the_static_scene(head):
    dry = noise(0.5)
    still = render_turning_source(head, None, 60.0, 10.0, 2.0, dry, np.random.default_rng(1),
                                  HeadPath.still(1.0), 0.2)
    np.testing.assert_array_equal(still, oaconvolve(dry[None], anechoic_ir(head, 60.0, 10.0, 2.0), axes=1))


def test_a_still_head_in_a_room_renders_as_the_static_scene(head):
    room = RoomGeometry((6.0, 5.0, 3.0), 0.3, (2.5, 2.0, 1.5), 30.0, max_order=2)
    dry = noise(0.4)
    turning = render_turning_source(head, room, -45.0, 0.0, 1.5, dry, np.random.default_rng(3),
                                    HeadPath.still(1.0), 0.0)
    static = oaconvolve(dry[None], binaural_rir(head, room, -45.0, 0.0, 1.5, np.random.default_rng(3)), axes=1)
    # early paths and the diffuse tail convolved apart: equal to float rounding
    assert np.abs(turning - static).max() < 1e-5 * np.abs(static).max()


def test_crossfades_between_identical_responses_are_transparent(head):
    x = noise(0.3)
    h = anechoic_ir(head, 30.0, 0.0, 1.0)
    hop = 80
    n_out = len(x) + h.shape[1] - 1
    n_keys = (n_out - 1) // hop + 2
    every_key = [(k, k) for k in range(n_keys)]  # a new run (a crossfade) at every key
    y = time_varying_convolve(x, lambda k: h, every_key, hop, n_out)
    ref = oaconvolve(x[None], h, axes=1)
    assert np.abs(y - ref).max() < 1e-5 * np.abs(ref).max()


def hard_switch(head, x, path, az0):
    """The same directions switched block by block without crossfades (what the test must catch)."""
    hop = int(KEY_HOP_S * RATE)
    out = np.zeros((2, len(x)), dtype=np.float32)
    for s in range(0, len(x), hop):
        az, el = path.head_direction(az0, 0.0, s / RATE)
        h = anechoic_ir(head, float(az), float(el), 1.0)
        lo = max(0, s - h.shape[1] + 1)
        y = oaconvolve(x[None, lo:s + hop], h, axes=1)[:, s - lo:s - lo + hop]
        out[:, s:s + y.shape[1]] = y[:, :len(x) - s]
    return out


def worst_click_db(y: np.ndarray) -> float:
    """The loudest 5 ms of the signal above 4 kHz, relative to its mean power (dB)."""
    hf = sosfilt(butter(8, 4000, "high", fs=RATE, output="sos"), y, axis=-1)[:, 1600:]  # past the filter's start
    frames = hf[:, : hf.shape[1] // 80 * 80].reshape(2, -1, 80)
    return float(10 * np.log10((frames**2).mean(axis=-1).max() / (y[:, 1600:] ** 2).mean()))


def test_a_turning_head_leaves_no_clicks(head, monkeypatch):
    # Noise below 1 kHz heard while the head glances 90 deg in 0.15 s (peak 1100 deg/s): a click
    # (a jump in the waveform) would put a burst of energy above 4 kHz.
    x = noise(1.0, seed=4, lowpass_hz=1000)
    path = yaw_path([0, 0.3, 0.45, 1.0], [0, 0, 90, 90])
    turning = render_turning_source(head, None, 60.0, 0.0, 1.0, x, None, path, 0.0)[:, :len(x)]
    clicky = hard_switch(head, x, path, 60.0)
    monkeypatch.setattr(turning_mod, "KEY_HOP_S", KEY_HOP_S / 10)  # a nearly continuous reference
    fine = render_turning_source(head, None, 60.0, 0.0, 1.0, x, None, path, 0.0)[:, :len(x)]
    assert worst_click_db(turning) < worst_click_db(fine) + 3.0  # as smooth as a 10x finer render
    assert worst_click_db(clicky) > worst_click_db(turning) + 20.0  # switching without crossfades is heard
    assert np.abs(turning - fine).max() < 0.01 * np.abs(fine).max()

    def frame_db(y):
        f = y[:, : y.shape[1] // 160 * 160].reshape(2, -1, 160)
        return 10 * np.log10((f**2).mean(axis=-1) + 1e-12)

    # 10 ms frame energy moves by no more than the noise's own fluctuation plus the turn's
    jumps = np.abs(np.diff(frame_db(turning)[:, 3:], axis=1)).max()
    assert jumps < np.abs(np.diff(frame_db(fine)[:, 3:], axis=1)).max() + 0.5


def test_the_sound_field_follows_the_head(head):
    # A source 60 deg to the left; the head turns left 60 deg and faces it.
    x = noise(1.5, seed=5)
    path = yaw_path([0, 0.3, 0.8, 2.0], [0, 0, 60, 60])
    y = render_turning_source(head, None, 60.0, 0.0, 2.0, x, None, path, 0.0)

    def ild_db(a, b):
        seg = y[:, int(a * RATE):int(b * RATE)]
        return float(10 * np.log10((seg[0] ** 2).mean() / (seg[1] ** 2).mean()))

    assert ild_db(0.05, 0.28) > 4.0  # left ear louder while the source is to the left
    assert abs(ild_db(0.9, 1.45)) < 0.5  # facing it: both ears alike


def test_a_room_render_is_the_static_one_until_the_head_moves(head):
    room = RoomGeometry((5.0, 4.0, 3.0), 0.3, (2.0, 2.0, 1.5), 0.0, max_order=2)
    x = noise(1.0, seed=6)
    path = yaw_path([0, 0.6, 0.9], [0, 0, 45])
    turning = render_turning_source(head, room, 120.0, 0.0, 1.5, x, np.random.default_rng(2), path, 0.0)
    static = render_turning_source(head, room, 120.0, 0.0, 1.5, x, np.random.default_rng(2), HeadPath.still(1), 0.0)
    before, after = int(0.55 * RATE), int(0.95 * RATE)
    np.testing.assert_allclose(turning[:, :before], static[:, :before], atol=1e-6 * np.abs(static).max())
    assert np.abs(turning[:, after:] - static[:, after:]).max() > 0.1 * np.abs(static).max()


@pytest.mark.parametrize("kind", list(PATH_KINDS))
def test_head_paths_have_their_kind_s_shape(kind):
    for seed in range(10):
        p = sample_head_path(np.random.default_rng(seed), 5.0, kind)
        assert p.t_s[0] == 0 and p.t_s[-1] == pytest.approx(5.0) and p.yaw_deg[0] == 0
        assert np.all(np.abs(p.pitch_deg) <= 20.0)
        span = np.ptp(p.yaw_deg)
        if kind == "still":
            assert p.is_still
        elif kind == "glance":
            assert 20.0 <= span <= 90.0
            assert p.turn_range_deg() >= span - 1e-6
        elif kind == "sweep":
            assert 30.0 * 0.3 <= span <= 120.0  # a sweep cut short by the clip's end turns less
        else:
            assert span >= 15.0


def test_simplified_paths_stay_within_tolerance_and_round_trip_through_the_dataset():
    t = np.arange(0, 3.0, 0.01)
    dense = yaw_path(t, 50 * np.sin(t))
    short = simplify(dense)
    assert len(short.t_s) < len(t) / 3
    assert np.abs(short.angles(t)[0] - dense.yaw_deg).max() < 0.06
    back, problems = head_path_from_json(short.to_json())
    assert not problems and np.allclose(back.yaw_deg, short.yaw_deg)


def scene_line(**extra):
    return {"id": "s1", "audio": "audio/s1.wav", "sample_rate_hz": 48000, "duration_s": 2.0,
            "sources": [{"label": "siren", "azimuth_deg": 150.0, "elevation_deg": 0.0, "distance_m": 2.0,
                         "onset_s": 0.0, "offset_s": 2.0}], "room": None, "hrtf": "kemar-mit", **extra}


def test_the_dataset_contract_keeps_and_checks_head_orientation():
    track = [{"t_s": 0.0, "yaw_deg": 0.0, "pitch_deg": 0.0, "roll_deg": 0.0},
             {"t_s": 1.0, "yaw_deg": 40.0, "pitch_deg": 5.0, "roll_deg": 0.0}]
    scene, problems = scene_from_json(scene_line(head_orientation=track))
    assert not problems and scene.to_json()["head_orientation"] == track
    _, problems = scene_from_json(scene_line(head_orientation=track[::-1]))
    assert problems and "strictly increasing" in problems[0]
    _, problems = scene_from_json(scene_line(head_orientation=[{"t_s": 0.0, "yaw_deg": "left"}]))
    assert problems and "finite number" in problems[0]
    # the source is given in the head frame at t = 0: at t = 1 s it is heard at 150 - 40 = 110
    path, _ = head_path_from_json(track)
    az, el = path.head_direction(150.0, 0.0, 1.0)
    assert float(az) == pytest.approx(110.0, abs=0.2)
    assert 0.0 < float(el) < 5.0  # and the nose went up 5 deg: a source behind rises a little


def test_questions_about_a_turning_scene_speak_in_the_head_frame_at_its_end():
    import dataclasses

    from agent.core.rotation import scene_heard_at
    from agent.core.scene import Scene, SourceLabel
    from training.qa.generate import generate_qa

    dog = SourceLabel("dog", 90.0, 0.0, 2.0, 0.0, 5.0)  # on the left when the clip starts
    still = Scene("s1", "a.wav", 48_000, 5.0, [dog], None, "kemar-mit")
    turned = dataclasses.replace(still, extra={"head_orientation": [{"t_s": 1.0, "yaw_deg": 0.0},
                                                                    {"t_s": 2.0, "yaw_deg": 90.0}]})
    (heard,) = scene_heard_at(turned).sources
    assert heard.azimuth_deg == pytest.approx(0.0, abs=1e-6)  # the head turned to face it
    assert scene_heard_at(still) is still
    ahead = dataclasses.replace(still, sources=[dataclasses.replace(dog, azimuth_deg=0.0)])
    got, want = generate_qa([turned], seed=3), generate_qa([ahead], seed=3)
    assert [(q.question, q.answer) for q in got] == [(q.question, q.answer) for q in want]
    assert [(q.question, q.answer) for q in got] != [(q.question, q.answer) for q in generate_qa([still], seed=3)]
