"""The bridge adapter on the firmware emulator over real UDP loopback: the emitted audio comes
out on the stream clock, a device stall is a counted gap of its length, a link outage the
device kept time through is filled, and the bridge's health counters pass through.

UDP may lose a datagram when this (loaded) machine runs the receiver late: the reassembler
fills a lost frame with flagged silence of its length and counts it (`lost_frames`), so the
checks are: every sample not flagged gap is the emitted one at its place in time, the faults
are flagged gap where they happened, and the gap counters add up."""

import threading
import time

import numpy as np
import pytest

from agent.capture import BridgeAudioSource, Source
from agent.core.errors import BinauraError
from firmware_bridge.emulator import DeviceEmulator, FaultConfig, UdpLink
from firmware_bridge.protocol import F32

RATE = 48_000
FRAME = 480  # 10 ms frames, as the reference firmware sends
SPEED = 2.0  # the emulator runs 2x real time: 1 s of audio in 0.5 s


def signal(seconds, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (int(seconds * RATE), 2)).astype(np.float32)


def stream(faults: FaultConfig, x: np.ndarray):
    """Run the emulator into a BridgeAudioSource until len(x) samples came out, or the
    emulator is done (its last frames may be lost: nothing follows them to fill them)."""
    src = BridgeAudioSource("bridge:udp://127.0.0.1:0", correct_drift=False)
    link = UdpLink(DeviceEmulator(x, RATE, FRAME, sample_format=F32), "127.0.0.1",
                   src.local_address[1], faults, speed=SPEED).start()
    guard = threading.Timer(len(x) / RATE / SPEED + 1.0, src.close)
    guard.start()
    blocks = []
    try:
        for b in src.blocks():
            blocks.append(b)
            if sum(x.n for x in blocks) >= len(x):
                break
    finally:
        guard.cancel()
        src.close()
        link.stop()
    return src, blocks


def check_audio(blocks, x, fault_span):
    """Non-gap samples equal the emitted ones at their time; the fault's span is all gap.
    Returns the number of gap samples within len(x)."""
    out = np.concatenate([b.samples for b in blocks], axis=1)[:, :len(x)]
    gap = np.concatenate([np.full(b.n, b.gap) for b in blocks])[:len(x)]
    assert out.shape[1] >= 0.95 * len(x)
    n = out.shape[1]
    np.testing.assert_array_equal(out[:, ~gap], x.T[:, :n][:, ~gap])  # exact: float32 frames, L and R kept
    a, b = fault_span
    assert gap[a:b].all() and not out[:, a:b].any()  # the fault: silence of its length, where it happened
    return int(gap.sum())


def check_clock(blocks):
    pos = 0
    for b in blocks:
        assert round(b.t_s * RATE) == pos and b.rate_hz == RATE
        pos += b.n


def test_emitted_audio_comes_out_with_a_stall_as_a_counted_gap():
    x = signal(1.0)
    src, blocks = stream(FaultConfig(stalls=[(0.5, 0.1)]), x)  # the device captured nothing for 100 ms
    assert isinstance(src, Source) and src.rate_hz == RATE and src.live
    check_clock(blocks)
    gap_samples = check_audio(blocks, x, (24_000, 28_800))
    c = src.counters()  # the reassembler's counters, passed through
    assert c["gaps"] >= 1 and c["gap_samples"] == 4_800 + FRAME * c["lost_frames"] == gap_samples
    assert c["lost_frames"] <= 5 and c["frames_ok"] >= 90 and c["crc_errors"] == c["foreign_datagrams"] == 0
    assert c["segment_gaps"] == 0 and c["samples_out"] == sum(b.n for b in blocks)
    assert all(isinstance(v, int) for v in c.values())
    assert "emulator, 48000 Hz" in src.describe()


def test_a_link_outage_the_device_kept_time_through_is_filled():
    """The device restarts its frame counter after the link comes back (a new segment, which
    the bridge does not bridge); its clock ran on, so the adapter fills the difference."""
    x = signal(1.0, seed=1)
    src, blocks = stream(FaultConfig(disconnects=[(0.4, 0.2)]), x)
    check_clock(blocks)
    gap_samples = check_audio(blocks, x, (19_200, 28_800))  # the 200 ms the link was down
    c = src.counters()
    assert c["segments"] == 2 and c["segment_gaps"] == 1 and c["segment_gap_samples"] == 9_600
    assert gap_samples == 9_600 + FRAME * c["lost_frames"]


def test_bad_bridge_uris_are_binaura_errors_naming_the_forms():
    with pytest.raises(BinauraError, match=r"no port; expected bridge:serial:///dev/ttyACM0\?baud=921600 or"):
        BridgeAudioSource("bridge:udp://127.0.0.1")


def test_close_from_another_thread_ends_a_silent_stream():
    src = BridgeAudioSource("bridge:udp://127.0.0.1:0")
    assert src.rate_hz == 0 and "waiting for the device" in src.describe()  # no device yet
    threading.Timer(0.2, src.close).start()
    t0 = time.monotonic()
    assert list(src.blocks()) == [] and time.monotonic() - t0 < 0.6
