"""Reassembly, gap filling, duplicates, reordering, drift, and the real transports."""

import time

import numpy as np
import pytest

from firmware_bridge import BridgeSource, parse_uri
from firmware_bridge import protocol as P
from firmware_bridge.drift import DriftEstimator, DriftResampler
from firmware_bridge.emulator import DeviceEmulator, FaultConfig, PtyLink, UdpLink
from firmware_bridge.link import concat
from firmware_bridge.reassembly import Reassembler, seq_delta
from firmware_bridge.soak import check_gaps, run_link

RATE = 48_000


def signal(seconds, seed=0):
    return (np.random.default_rng(seed).uniform(-0.5, 0.5, (int(seconds * RATE), 2))).astype(np.float32)


def audio(seq, start, n=48, flags=0):
    pcm = P.float_to_pcm(np.full((n, 2), (seq % 100) / 200.0), P.S16)
    return P.Frame(P.AUDIO, flags, 2, P.S16, seq, int(round(start * 1e6 / RATE)), RATE, pcm)


def test_serial_number_arithmetic_wraps():
    assert seq_delta(0, 2**32 - 1) == 1 and seq_delta(2**32 - 1, 0) == -1


def test_gap_becomes_flagged_silence_of_the_right_length():
    r = Reassembler()
    blocks = r.push(audio(0, 0)) + r.push(audio(1, 48)) + r.push(audio(4, 192))
    assert [(b.gap, len(b.samples)) for b in blocks] == [(False, 48), (False, 48), (True, 96), (False, 48)]
    assert r.stats.gaps == 1 and r.stats.gap_samples == 96 and r.stats.lost_frames == 2
    assert blocks[2].device_time_s == pytest.approx(96 / RATE)


def test_duplicates_dropped_and_reordering_within_the_jitter_buffer():
    r = Reassembler(jitter_frames=4)
    order = [0, 2, 1, 1, 3, 0, 5, 4, 6]
    blocks = [b for s in order for b in r.push(audio(s, 48 * s))] + r.flush()
    assert [b.device_time_s * RATE for b in blocks] == [48 * s for s in range(7)]
    assert not any(b.gap for b in blocks)
    assert r.stats.duplicates == 2 and r.stats.reordered == 2


def test_late_frame_is_never_spliced_in():
    r = Reassembler(jitter_frames=0)
    blocks = r.push(audio(0, 0)) + r.push(audio(2, 96)) + r.push(audio(1, 48))
    assert sum(len(b.samples) for b in blocks) == 144 and r.stats.late_dropped == 1


def test_discontinuity_starts_a_new_segment():
    r = Reassembler()
    r.push(audio(0, 0))
    r.push(audio(1, 48))
    blocks = r.push(audio(0, 10 * RATE, flags=P.DISCONTINUITY))  # device restarted, seq from 0
    assert r.stats.segments == 2 and not any(b.gap for b in blocks)


def test_drift_estimate_and_resampling():
    est = DriftEstimator(bin_s=0.5)
    rng = np.random.default_rng(1)
    for k in range(4000):  # 40 s of 10 ms frames from a device 150 ppm fast, jittery arrival
        dev = k * 0.01
        est.add(dev, dev / (1 + 150e-6) + 0.003 + rng.exponential(0.002))
    assert est.ppm == pytest.approx(150, abs=5)
    rs = DriftResampler(2)
    rs.ratio = 1 / (1 + 150e-6)
    x = signal(10)
    y = np.concatenate([rs.process(x[i:i + 480]) for i in range(0, len(x), 480)])
    assert len(y) == pytest.approx(len(x) / (1 + 150e-6), abs=12)


def test_resampler_output_does_not_depend_on_chunk_size():
    x = signal(1)
    outs = []
    for chunk in (37, 480, 4096):
        rs = DriftResampler(2)
        rs.ratio = 0.9999
        outs.append(np.concatenate([rs.process(x[i:i + chunk]) for i in range(0, len(x), chunk)]))
    n = min(len(o) for o in outs)
    for o in outs[1:]:
        np.testing.assert_allclose(o[:n], outs[0][:n], atol=1e-6)


def check_every_gap_reported(blocks, sent):
    r = check_gaps(blocks, sent, RATE)
    assert r["lost_not_in_a_gap"] == 0
    assert r["delivered_samples"] == r["device_samples_spanned"]  # gap-filled length equals device time
    return r


def test_faulty_serial_link_reports_every_gap():
    emu = DeviceEmulator(signal(20), RATE, 48, drift_ppm=100)
    faults = FaultConfig(byte_error_rate=0.001, drop_rate=0.005, seed=3)
    link, blocks, sent = run_link(emu, faults)
    check_every_gap_reported(blocks, sent)
    assert link.reassembler.stats.gaps > 10 and link.device is not None


def test_faulty_datagram_link_with_duplicates_and_reordering():
    emu = DeviceEmulator(signal(10), RATE, 240)
    faults = FaultConfig(drop_rate=0.01, duplicate_rate=0.02, reorder_rate=0.05, jitter_s=0.001, seed=4)
    link, blocks, sent = run_link(emu, faults, stream=False, jitter=8)
    check_every_gap_reported(blocks, sent)
    st = link.reassembler.stats
    assert st.duplicates > 0 and st.reordered > 0 and st.late_dropped == 0


def test_undamaged_audio_arrives_bit_exact_in_order():
    x = signal(2)
    link, blocks, _ = run_link(DeviceEmulator(x, RATE, 96), FaultConfig())
    y = concat(blocks)
    np.testing.assert_allclose(y, P.pcm_to_float(P.float_to_pcm(x, P.S16), P.S16, 2)[: len(y)], atol=0)
    assert len(y) == len(x)


def test_uri_parsing():
    u = parse_uri("bridge:serial:///dev/ttyACM0?baud=115200")
    assert (u.kind, u.path, u.baud) == ("serial", "/dev/ttyACM0", 115200)
    u = parse_uri("bridge:udp://0.0.0.0:5005")
    assert (u.kind, u.port) == ("udp", 5005)
    with pytest.raises(ValueError, match="expected bridge:serial"):
        parse_uri("serial:///dev/ttyACM0")


@pytest.mark.integration
def test_emulated_serial_port_through_pyserial_with_reconnect():
    x = signal(1.2)
    faults = FaultConfig(disconnects=[(0.5, 0.3)])
    link = PtyLink(DeviceEmulator(x, RATE, 480, hello_s=0.1), faults, speed=4.0).start()
    src = BridgeSource(f"bridge:serial://{link.port}?baud=921600", correct_drift=False, reconnect_s=0.02)
    try:
        blocks = list(src.blocks(until_s=1.2))
    finally:
        src.close()
        link.stop()
    h = src.health()
    assert h["device"]["device_id"] == "emulator"
    assert h["reconnects"] >= 1 and h["reassembly"]["segments"] >= 2
    assert sum(len(b.samples) for b in blocks if not b.gap) > 0.5 * len(x)


@pytest.mark.integration
def test_emulated_udp_device_on_loopback():
    src = BridgeSource("bridge:udp://127.0.0.1:0", correct_drift=False)  # bound here, on a free port
    port = src.local_address[1]
    x = signal(0.8)
    link = UdpLink(DeviceEmulator(x, RATE, 480), "127.0.0.1", port, FaultConfig(duplicate_rate=0.05, seed=1),
                   speed=4.0).start()
    t0 = time.monotonic()
    try:
        blocks = list(src.blocks(until_s=0.6))
    finally:
        src.close()
        link.stop()
    assert time.monotonic() - t0 < 5
    assert sum(len(b.samples) for b in blocks) >= 0.9 * len(x)


def test_device_stall_becomes_a_gap_of_its_length():
    emu = DeviceEmulator(signal(3), RATE, 480)
    link, blocks, sent = run_link(emu, FaultConfig(stalls=[(1.0, 0.25)]))
    gaps = [b for b in blocks if b.gap]
    assert len(gaps) == 1 and len(gaps[0].samples) == int(0.25 * RATE)
    assert gaps[0].device_time_s == pytest.approx(1.0, abs=0.01)


@pytest.mark.integration
def test_host_controls_the_emulated_board_over_the_serial_port():
    from firmware_bridge.protocol import SET_GAIN, START, STOP, gain_payload

    link = PtyLink(DeviceEmulator(signal(4), RATE, 480, hello_s=0.1), speed=2.0).start()
    src = BridgeSource(f"bridge:serial://{link.port}", correct_drift=False)
    try:
        first = list(src.blocks(until_s=0.3))
        assert src.send(STOP)
        time.sleep(0.1)
        list(src.blocks(until_s=0.1))  # drain what was in flight
        stopped = [b for b in src.blocks(until_s=0.3) if not b.gap]
        assert src.send(SET_GAIN, gain_payload(-6.0)) and src.send(START)
        resumed = [b for b in src.blocks(until_s=0.4) if not b.gap]
    finally:
        src.close()
        link.stop()
    assert first and not stopped and resumed
    h = src.health()
    assert h["device"]["gain_db"] == pytest.approx(-6.0) and h["reassembly"]["segments"] >= 2
