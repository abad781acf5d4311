"""Head orientation from the firmware bridge lands on the audio's stream clock.

The emulated board turns its head 90 deg left over 1 s while it streams; through the bridge
source, an OrientationInput reads ~0 before the turn, ~45 at its middle and ~90 after it at
the stream times where the audio recorded then sits. With drift correction the stream runs on
the host clock; a click and an orientation step taken at the same device instant stay together."""

import math
import threading

import numpy as np
import pytest

from agent.capture import BridgeAudioSource
from agent.core.rotation import matrix_to_ypr, quat_from_ypr
from agent.track.orientation import OrientationInput
from firmware_bridge import protocol as P
from firmware_bridge.emulator import DeviceEmulator, FaultConfig, UdpLink, simulate

RATE = 48_000
FRAME = 480  # 10 ms frames, as the reference firmware sends
SPEED = 2.0
LAG_S = 0.55  # how far the encoder's frames trail the audio (latency + a hop): at() is asked there


def turn_left_90(t_s: float):
    """The head's path on the device clock: still, then 90 deg left between 0.5 and 1.5 s."""
    return tuple(quat_from_ypr(90.0 * min(max(t_s - 0.5, 0.0), 1.0)))


def yaw_at(orientation: OrientationInput, t_s: float) -> float:
    pose = orientation.at(t_s)
    assert pose.mode == "world", (t_s, pose)
    return float(matrix_to_ypr(pose.matrix)[0])


def test_a_turn_streamed_beside_the_audio_is_on_the_audio_clock():
    x = np.random.default_rng(3).uniform(-0.5, 0.5, (int(2.5 * RATE), 2)).astype(np.float32)
    src = BridgeAudioSource("bridge:udp://127.0.0.1:0", correct_drift=False)  # samples as sent: found exactly
    orientation = src.orientation_input()  # as `listen --orientation bridge` wires it
    emu = DeviceEmulator(x, RATE, FRAME, sample_format=P.F32, orientation=turn_left_90, orientation_rate_hz=50)
    link = UdpLink(emu, "127.0.0.1", src.local_address[1], FaultConfig(), speed=SPEED).start()
    guard = threading.Timer(len(x) / RATE / SPEED + 2.0, src.close)
    guard.start()
    blocks = []
    try:
        for b in src.blocks():
            blocks.append(b)
            orientation.at(max(0.0, b.t_s - LAG_S))  # the pipeline asks about frames this far behind
            if b.t_s + b.n / RATE >= 2.4:
                break
    finally:
        guard.cancel()
        src.close()
        link.stop()
    # Where the stream's clock sits on the device's: found from the audio itself.
    first = next(b for b in blocks if not b.gap)
    k = next(k for k in range(0, len(x) - FRAME + 1, FRAME) if np.array_equal(x[k:k + FRAME].T, first.samples[:, :FRAME]))
    offset_s = k / RATE - first.t_s  # device time = stream time + offset_s
    assert abs(offset_s) < 0.1
    c = src.counters()
    assert orientation.counters["orientation_refused"] == 0  # none "from the future", none out of order
    assert orientation.counters["orientation_samples"] >= 100 and c["orientation_placed"] >= 100
    assert c["orientation_frames"] >= 100 and c["orientation_invalid"] == c["orientation_unplaced"] == 0
    for t_dev, want in [(0.3, 0.0), (0.75, 22.5), (1.0, 45.0), (1.25, 67.5), (1.6, 90.0), (2.2, 90.0)]:
        assert yaw_at(orientation, t_dev - offset_s) == pytest.approx(want, abs=1.5), t_dev


def feed_from(src: BridgeAudioSource, emu: DeviceEmulator, faults: FaultConfig | None = None) -> None:
    """Hand the source the emulator's datagrams without a network or real time."""
    datagrams = iter([s.raw for s in simulate(emu, faults or FaultConfig(), stream=False) if s.raw])
    src.bridge._udp.receive = lambda: next(datagrams, None)


def test_with_drift_correction_a_click_and_a_step_taken_together_stay_together():
    """A board whose clock runs 1% fast: its audio is resampled onto the host clock, so device
    second 1.0 sits at stream 0.990 s; the orientation sample taken then must sit there too."""
    x = np.zeros((2 * RATE, 2), np.float32)
    x[RATE] = 0.9  # a click at device time 1.0 s
    path = [(0.01 * k, tuple(quat_from_ypr(90.0 if k >= 100 else 0.0))) for k in range(200)]
    src = BridgeAudioSource("bridge:udp://127.0.0.1:0")
    src.bridge.link.drift.ppm = 10_000.0  # as the estimate would be after 8 s of this board
    got = []
    src.on_orientation = lambda t_s, q: got.append((t_s, q))
    feed_from(src, DeviceEmulator(x, RATE, FRAME, sample_format=P.F32, orientation=path))
    audio = []
    try:
        for b in src.blocks():
            audio.append(b.samples)
            if b.t_s >= 1.5:
                break
    finally:
        src.close()
    y = np.concatenate(audio, axis=1)
    t_click = int(np.argmax(np.abs(y[0]))) / RATE
    t_step = next(t for t, q in got if abs(q[3]) > 0.5)  # sin(45 deg) = 0.707: the first 90 deg sample
    assert t_click == pytest.approx(1.0 / 1.01, abs=0.5e-3)
    assert t_step == pytest.approx(t_click, abs=0.5e-3)
    assert [t for t, _ in got] == sorted(t for t, _ in got)
    np.testing.assert_allclose(np.diff([t for t, _ in got]), 0.01 / 1.01, atol=1e-4)


def test_samples_of_another_segment_are_counted_not_placed_and_early_ones_wait():
    """A sample far behind the audio (an earlier segment) is dropped and counted; one far ahead
    of it waits for its own audio instead of landing on a wrong anchor."""
    def audio(seq, t_s, flags=0):
        return P.encode_frame(P.Frame(P.AUDIO, flags, 2, P.S16, seq, int(round(t_s * 1e6)), RATE, bytes(4 * FRAME)))

    def orient(seq, t_s):
        return P.encode_frame(P.Frame(P.ORIENTATION, 0, 0, 0, seq, int(round(t_s * 1e6)), 0,
                                      P.orientation_payload(quat_from_ypr(10.0))))

    frames = [audio(0, 100.0, P.DISCONTINUITY), orient(1, 10.0), orient(2, 103.0), audio(3, 100.01),
              audio(4, 103.0, P.DISCONTINUITY), orient(5, 103.005), audio(6, 103.01)]
    src = BridgeAudioSource("bridge:udp://127.0.0.1:0", correct_drift=False, max_fill_s=5.0)
    got = []
    src.on_orientation = lambda t_s, q: got.append(t_s)
    it = iter(frames)
    src.bridge._udp.receive = lambda: next(it, None)
    n = 0
    try:
        for b in src.blocks():
            n += b.n
            if n >= 4 * FRAME + round(2.98 * RATE):
                break
    finally:
        src.close()
    # the stream: 0.02 s of audio, then the 2.98 s the device kept time through, then its audio
    assert got == pytest.approx([3.0, 3.005], abs=1e-6)
    c = src.counters()
    assert c["orientation_unplaced"] == 1 and c["orientation_placed"] == 2 and c["segment_gaps"] == 1


def test_without_a_callback_samples_are_placed_and_counted_only():
    src = BridgeAudioSource("bridge:udp://127.0.0.1:0", correct_drift=False)
    x = np.zeros((RATE // 2, 2), np.float32)
    feed_from(src, DeviceEmulator(x, RATE, FRAME, sample_format=P.F32, orientation=turn_left_90))
    try:
        for b in src.blocks():
            if b.t_s >= 0.45:
                break
    finally:
        src.close()
    c = src.counters()
    assert c["orientation_placed"] == c["orientation_frames"] >= 20
    assert math.isclose(src.stream_s, 0.46, abs_tol=0.011)
