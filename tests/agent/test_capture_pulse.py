"""The real audio path, nothing mocked: audio played into a PulseAudio null sink is captured by
`MicSource("pulse")` (PortAudio -> ALSA's pulse PCM -> the sink's monitor) with each ear's
sound in its own channel, whole, at its level, on a clock that runs at real time."""

import threading
import time

import numpy as np
import pytest

from agent.capture import MicSource
from tests.agent.pulse import null_sink_or_skip

RATE = 48_000


@pytest.fixture(scope="module")
def pulse():
    yield from null_sink_or_skip()


def tone(seconds, freq_hz=1_000.0, amp=0.3):
    t = np.arange(int(seconds * RATE)) / RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms fades: no clicks
    return (amp * np.sin(2 * np.pi * freq_hz * t) * ramp).astype(np.float32)


def silence(seconds):
    return np.zeros(int(seconds * RATE), np.float32)


class Capture:
    """MicSource("pulse") consumed on a thread while the test plays."""

    def __init__(self, pa, **kw):
        self.mic = MicSource(pa.device, block_s=0.05, **kw)
        self.blocks = []
        self.mic.start()  # before playing: the monitor only carries what plays while it is open
        self._t = threading.Thread(target=lambda: self.blocks.extend(self.mic.blocks()), daemon=True)
        self._t.start()

    def stop(self, tail_s=0.4):
        time.sleep(tail_s)  # what is still in PulseAudio's and ALSA's buffers
        self.mic.close()
        self._t.join(timeout=2)
        return np.concatenate([b.samples for b in self.blocks], axis=1)


def frame_db(x, rate, frame_s=0.01):
    """Level of each 10 ms frame per channel, dB re full scale (-120 for digital silence)."""
    n = int(rate * frame_s)
    k = x.shape[1] // n
    e = (x[:, :k * n].astype(np.float64) ** 2).reshape(2, k, n).mean(axis=2)
    return 10 * np.log10(e + 1e-12)


def spans(active):
    """(start, end) frame index of each run of True."""
    d = np.diff(np.concatenate([[0], active.astype(int), [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]))


def test_a_left_burst_arrives_left_and_a_right_burst_right(pulse):
    L, R = tone(0.5), tone(0.5, freq_hz=1_500.0)
    left = np.concatenate([silence(0.3), L, silence(0.3 + 0.5 + 0.3)])
    right = np.concatenate([silence(0.3 + 0.5 + 0.3), R, silence(0.3)])
    cap = Capture(pulse)
    pulse.play(np.stack([left, right]), RATE)
    x = cap.stop()
    rate = cap.mic.rate_hz
    db = frame_db(x, rate)
    bursts_l = spans(db[0] > -40)
    bursts_r = spans(db[1] > -40)
    assert len(bursts_l) == 1 and len(bursts_r) == 1, (bursts_l, bursts_r)  # one burst each, no dropouts
    (a0, a1), (b0, b1) = bursts_l[0], bursts_r[0]
    # Whole, in order, 0.3 s apart: the clock is the room's.
    assert (a1 - a0) / 100 == pytest.approx(0.5, abs=0.03) and (b1 - b0) / 100 == pytest.approx(0.5, abs=0.03)
    assert (b0 - a0) / 100 == pytest.approx(0.8, abs=0.03)
    # Each ear hears its own burst: L at least 20 dB above R during the left one, and back.
    e = lambda c, s: float((x[c, s[0] * rate // 100:s[1] * rate // 100].astype(np.float64) ** 2).sum())  # noqa: E731
    assert 10 * np.log10(e(0, bursts_l[0]) / (e(1, bursts_l[0]) + 1e-20)) >= 20
    assert 10 * np.log10(e(1, bursts_r[0]) / (e(0, bursts_r[0]) + 1e-20)) >= 20
    # At its level: a 0.3 amplitude sine is -13.5 dBFS (the sink and the capture are at 100 %).
    assert np.median(db[0, a0 + 5:a1 - 5]) == pytest.approx(-13.5, abs=1.0)
    assert np.median(db[1, b0 + 5:b1 - 5]) == pytest.approx(-13.5, abs=1.0)
    c = cap.mic.counters()
    assert c["device_lost"] == 0 and c["gap_samples"] == 0 and c["samples_out"] == x.shape[1]


def test_a_five_second_binaural_scene_is_captured_whole_with_its_level_differences(pulse):
    """What the end-to-end listen test plays: 5 s at 48 kHz. Broadband noise, L 6 dB above R for
    2.5 s, then R 6 dB above L: captured without a hole, each half with its ILD."""
    rng = np.random.default_rng(7)
    n = rng.standard_normal((2, 5 * RATE)).astype(np.float32) * 0.1
    n[0] = n[1]  # one source: the ears differ only in level
    g = 10 ** (-6 / 20)
    n[1, :len(n[1]) // 2] *= g
    n[0, len(n[0]) // 2:] *= g
    scene = np.concatenate([np.zeros((2, RATE // 5), np.float32), n, np.zeros((2, RATE // 5), np.float32)], axis=1)
    cap = Capture(pulse)
    pulse.play(scene, RATE)
    x = cap.stop()
    rate = cap.mic.rate_hz
    db = frame_db(x, rate).max(axis=0)
    runs = spans(db > -50)
    assert len(runs) == 1, runs  # one stretch of sound: no dropout inside it
    a0, a1 = runs[0]
    assert (a1 - a0) / 100 == pytest.approx(5.0, abs=0.03)
    half = (a0 + a1) // 2
    for (s0, s1), want_db in (((a0 + 10, half - 10), 6.0), ((half + 10, a1 - 10), -6.0)):
        seg = x[:, s0 * rate // 100:s1 * rate // 100].astype(np.float64)
        ild = 10 * np.log10((seg[0] ** 2).sum() / (seg[1] ** 2).sum())
        assert ild == pytest.approx(want_db, abs=0.3)
    assert not any(b.gap for b in cap.blocks)
