"""ORIENTATION frames: the head's quaternion beside the audio, on the device clock.

The frame round-trips in Python, the C encoder's payload packer writes the golden bytes, a bad
frame (wrong length, NaN, Inf, a bad header field) is a counted fault that leaves the audio
alone, the emulator interleaves a trajectory on its audio clock (with dropouts and NaN readings
when asked), and a host that predates the type refuses it without losing audio."""

import math
import shutil
import subprocess

import numpy as np
import pytest

from firmware_bridge import cobs
from firmware_bridge import protocol as P
from firmware_bridge.emulator import DeviceEmulator, FaultConfig, simulate
from firmware_bridge.link import BridgeLink, LinkConfig, concat
from firmware_bridge.reassembly import Reassembler
from firmware_bridge.stream import StreamDecoder
from firmware_bridge.trajectory import OrientationTrack

from .test_protocol import C_DIR, VECTORS
from .test_validation import RATE, N, audio, feed, tone

YAW90 = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))  # head turned 90 deg left


def orientation(seq, q=YAW90, ts_us=None, payload=None, **fields):
    f = P.Frame(P.ORIENTATION, 0, 0, 0, seq, int(round(seq * N * 1e6 / RATE)) if ts_us is None else ts_us, 0,
                P.orientation_payload(q) if payload is None else payload)
    for k, v in fields.items():
        setattr(f, k, v)
    return f


def test_an_orientation_frame_round_trips_as_float32():
    f = orientation(7, (0.5, -0.25, 0.75, -0.35), ts_us=123_456_789)
    raw = P.encode_frame(f)
    assert len(raw) == P.HEADER_SIZE + 16 + P.CRC_SIZE and raw[3] == P.ORIENTATION == 6
    back = P.decode_frame(raw)
    assert back == f and back.timestamp_us == 123_456_789
    assert back.quaternion() == tuple(float(np.float32(v)) for v in (0.5, -0.25, 0.75, -0.35))
    assert raw[P.HEADER_SIZE:P.HEADER_SIZE + 4] == np.float32(0.5).tobytes()  # w first, little-endian
    with pytest.raises(P.FrameError, match="audio frame carries no quaternion"):
        audio(0).quaternion()


def test_the_golden_vectors_hold_orientation_frames():
    orient = [v for v in VECTORS if v["type"] == P.ORIENTATION]
    assert len(orient) == 3
    for v in orient:
        (f,) = cobs_frames(bytes.fromhex(v["stream_hex"]))
        assert f.quaternion() == tuple(v["quaternion"])


def cobs_frames(data: bytes) -> list:
    dec = StreamDecoder()
    frames = dec.feed(data)
    assert dec.stats.invalid_frames == dec.stats.nonfinite_frames == 0
    return frames


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_c_payload_packer_writes_the_golden_bytes(tmp_path):
    """encode_vectors.c's `q` lines build the payload with ba_orientation_payload from the
    numbers, not from hex: the C float32 layout must equal Python's."""
    exe = tmp_path / "encode_vectors"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(C_DIR / "binaura_link.c"), str(C_DIR / "encode_vectors.c")], check=True)
    orient = [v for v in VECTORS if v["type"] == P.ORIENTATION]
    # repr of a float32's exact value: strtof reads it back to that float32
    lines = "".join(f"q {v['flags']} {v['seq']} {v['timestamp_us']} {v['sample_rate_hz']} "
                    + " ".join(repr(x) for x in v["quaternion"]) + "\n" for v in orient)
    out = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True).stdout.split()
    assert out == [v["stream_hex"] for v in orient]


BAD = {
    "15-byte payload": (orientation(2, payload=bytes(15)), "orientation payload of 15 bytes, expected 16"),
    "empty payload": (orientation(2, payload=b""), "orientation payload of 0 bytes, expected 16"),
    "two quaternions": (orientation(2, payload=P.orientation_payload(YAW90) * 2), "payload of 32 bytes"),
    "NaN": (orientation(2, (math.nan, 0.0, 0.0, 1.0)), "NaN or Inf"),
    "Inf": (orientation(2, (1.0, 0.0, -math.inf, 0.0)), "NaN or Inf"),
    "channels": (orientation(2, channels=2), "channels 2, format 0"),
    "sample rate": (orientation(2, sample_rate_hz=50), "sample rate 50 Hz"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_orientation_frame_is_refused_with_its_reason(case):
    frame, msg = BAD[case]
    with pytest.raises(P.InvalidFrameError, match=msg) as e:
        P.decode_frame(P.encode_frame(frame))
    assert e.value.frame_type == P.ORIENTATION


def test_a_non_unit_quaternion_passes_the_protocol_as_sent():
    """The norm is the orientation input's to judge (it warns, or normalises a near one)."""
    f = P.decode_frame(P.encode_frame(orientation(2, (2.0, 0.0, 0.0, 0.0))))
    assert f.quaternion() == (2.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("datagrams", [False, True], ids=["serial", "udp"])
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_orientation_frame_is_a_counted_fault_and_the_audio_is_whole(case, datagrams):
    def ts(k):  # device time of audio sample k * N
        return int(round(k * N * 1e6 / RATE))

    frames = [audio(0), orientation(1, ts_us=1000), BAD[case][0], audio(3, timestamp_us=ts(1)),
              orientation(4, ts_us=3000), audio(5, timestamp_us=ts(2))]
    link = BridgeLink(LinkConfig(correct_drift=False), datagrams=datagrams)
    blocks = feed(link, [P.encode_frame(f) for f in frames], datagrams)
    h = link.health()
    assert h.decoder["orientation_invalid"] == 1 and h.decoder["frames_ok"] == 5
    assert h.decoder["invalid_frames"] + h.decoder["nonfinite_frames"] == 1
    assert h.reassembly["gaps"] == 0 and not any(b.gap for b in blocks)  # audio is timed by its timestamps
    assert len(concat(blocks)) == 3 * N
    got = link.take_orientation()
    assert [(o.device_time_s, o.quaternion) for o in got] == \
        [(0.001, tuple(float(np.float32(v)) for v in YAW90)), (0.003, tuple(float(np.float32(v)) for v in YAW90))]
    assert h.reassembly["orientation_frames"] == 2 and link.take_orientation() == []


def test_orientation_comes_out_in_order_once_and_only_after_audio_started():
    r = Reassembler(jitter_frames=4)
    a0, o1, o2, a3, o4 = audio(0), orientation(1), orientation(2), audio(3), orientation(4)
    for f in (o1, a0, o2, o2, o4, a3, o4):  # o1 before any audio; o2, o4 twice; o4 ahead of a3
        r.push(f)
    r.flush()
    assert [f.seq for f, _ in r.orientation] == [2, 4]
    assert r.stats.orientation_frames == 2 and r.stats.orientation_dropped == 3  # o1, o2 again, o4 again


def yaw_quaternion(t):
    """A turn of 90 deg left between 0.5 and 1.5 s of device time."""
    yaw = math.radians(90 * min(max(t - 0.5, 0.0), 1.0))
    return (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))


def test_the_emulator_interleaves_a_trajectory_on_its_audio_clock():
    x = np.zeros((2 * RATE, 2), np.float32)
    emu = DeviceEmulator(x, RATE, 480, orientation=yaw_quaternion, orientation_rate_hz=50)
    frames = [f for _, f in emu.frames() if f is not None]
    assert [f.seq for f in frames] == list(range(len(frames)))  # one sequence counter for all
    orient = [f for f in frames if f.type == P.ORIENTATION]
    assert [f.timestamp_us for f in orient] == [20_000 * k for k in range(100)]  # 50 Hz for the 2 s of audio
    q = np.array([f.quaternion() for f in orient])
    yaw = np.degrees(2 * np.arctan2(q[:, 3], q[:, 0]))
    np.testing.assert_allclose(yaw[[0, 25, 50, 75, 99]], [0, 0, 45, 90, 90], atol=1e-4)
    # each reading goes out in the frame it was taken in, before that frame's audio
    sent = [(f.type, f.timestamp_us) for f in frames if f.type in (P.AUDIO, P.ORIENTATION)]
    for i, (t, ts) in enumerate(sent):
        if t == P.ORIENTATION:
            nxt = next(s for s in sent[i:] if s[0] == P.AUDIO)
            assert nxt[1] <= ts < nxt[1] + 10_000


def test_samples_from_a_list_and_faults_dropouts_and_nan():
    x = np.zeros((RATE, 2), np.float32)
    samples = [(0.1 * k, (1.0, 0.0, 0.0, 0.0)) for k in range(10)]
    faults = FaultConfig(orientation_dropouts=[(0.25, 0.2)], orientation_nan=[(0.7, 0.05)])
    emu = DeviceEmulator(x, RATE, 480, orientation=samples)
    got = [f for _, f in emu.frames(faults) if f is not None and f.type == P.ORIENTATION]
    assert [f.timestamp_us for f in got] == [0, 100_000, 200_000, 500_000, 600_000, 700_000, 800_000, 900_000]
    assert [all(math.isnan(v) for v in f.quaternion()) for f in got] == [False] * 5 + [True] + [False] * 2
    # through the link: the NaN one is a counted non-finite frame, the rest arrive (but the first,
    # sent before any audio: nothing to place it against)
    link = BridgeLink(LinkConfig(correct_drift=False))
    for s in simulate(emu, FaultConfig(orientation_nan=[(0.7, 0.05)]), stream=True):
        link.feed_bytes(s.raw, s.host_time_s)
    h = link.health()
    assert h.decoder["nonfinite_frames"] == 1 and h.decoder["orientation_invalid"] == 1
    assert [round(o.device_time_s, 3) for o in link.take_orientation()] == [round(0.1 * k, 3) for k in (1, 2, 3, 4, 5, 6, 8, 9)]
    assert h.reassembly["orientation_dropped"] == 1


def test_a_trajectory_refuses_what_is_not_one():
    with pytest.raises(ValueError, match="strictly increasing"):
        OrientationTrack([(0.2, YAW90), (0.1, YAW90)])
    with pytest.raises(ValueError, match="4 numbers"):
        OrientationTrack([(0.0, (1.0, 0.0, 0.0))])
    with pytest.raises(ValueError, match="positive number of Hz"):
        OrientationTrack(yaw_quaternion, rate_hz=0)


@pytest.mark.parametrize("datagrams", [False, True], ids=["serial", "udp"])
def test_a_host_that_predates_the_type_refuses_it_and_keeps_all_audio(monkeypatch, datagrams):
    """Version 1 grows a type without a new version number: an older host (here, one whose
    table lacks ORIENTATION) counts each such frame as invalid and a lost sequence number; the
    audio is placed by its timestamps, so none of it is lost."""
    monkeypatch.delitem(P.TYPE_NAMES, P.ORIENTATION)
    x = np.stack([tone(k) for k in range(100)]).reshape(-1, 2).astype(np.float32)
    emu = DeviceEmulator(x, RATE, N, sample_format=P.F32, orientation=yaw_quaternion)
    link = BridgeLink(LinkConfig(jitter_frames=4 if datagrams else 0, correct_drift=False), datagrams=datagrams)
    blocks = []
    for s in simulate(emu, FaultConfig(), stream=not datagrams):
        blocks += link.feed_datagram(s.raw, s.host_time_s) if datagrams else link.feed_bytes(s.raw, s.host_time_s)
    blocks += link.flush()
    h = link.health()
    n_orient = len([f for _, f in emu.frames() if f is not None and f.type == P.ORIENTATION])
    assert n_orient == 5 and h.decoder["invalid_frames"] == n_orient
    assert "unknown message type 6" in h.decoder["last_invalid"]
    assert h.reassembly["gaps"] == 0 and not any(b.gap for b in blocks)
    np.testing.assert_array_equal(concat(blocks), x)
    assert link.take_orientation() == []


def test_cobs_framing_of_an_identity_quaternion_has_no_zero():
    raw = P.encode_frame(orientation(0, (1.0, 0.0, 0.0, 0.0)))
    assert 0 not in cobs.encode(raw) and cobs.decode(cobs.encode(raw)) == raw
