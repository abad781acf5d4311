"""UDP: loopback by default, one device only, control messages to that device; URIs refused clearly.

Real sockets on 127.0.0.1: a "device" is a socket bound to its own port.
"""

import socket

import numpy as np
import pytest

from firmware_bridge import BridgeSource, BridgeUriError, parse_uri
from firmware_bridge import protocol as P
from firmware_bridge.link import concat

from .test_validation import RATE, N, audio, tone


def device_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(1.0)
    return s


def hello(device_id: str, seq: int = 0) -> bytes:
    info = P.DeviceInfo((1, 0, 0), RATE, P.S16, 2, 0.0, 150, "kemar-mit", device_id)
    return P.encode_frame(P.Frame(P.HELLO, 0, 0, 0, seq, 0, RATE, info.pack()))


def audio_raw(seq: int, first_seq: int = 1, scale: float = 1.0, **fields) -> bytes:
    """Audio frame `seq`; its samples are tone(seq - first_seq) * scale at that device time."""
    k = seq - first_seq
    f = audio(k, payload=P.float_to_pcm(tone(k) * scale, P.S16), **fields)
    f.seq = seq
    return P.encode_frame(f)


def expected(frames: range, scale: float = 1.0) -> np.ndarray:
    return np.concatenate([P.pcm_to_float(P.float_to_pcm(tone(k) * scale, P.S16), P.S16, 2) for k in frames])


@pytest.fixture()
def devices():
    a, b = device_socket(), device_socket()
    yield a, b
    a.close()
    b.close()


def addr(s: socket.socket) -> tuple[str, int]:
    return s.getsockname()[:2]


def hostport(s: socket.socket) -> str:
    return "{}:{}".format(*addr(s))


def test_listener_binds_to_loopback_unless_the_uri_names_an_interface():
    assert parse_uri("bridge:udp://:5005").host == "127.0.0.1"
    assert parse_uri("bridge:udp://0.0.0.0:5005").host == "0.0.0.0"  # every interface: explicit only
    src = BridgeSource("bridge:udp://:0")
    try:
        host, port = src.local_address
        assert host == "127.0.0.1" and port > 0
    finally:
        src.close()


def test_locks_onto_the_first_hello_sender_and_replies_only_to_it(devices):
    a, b = devices
    src = BridgeSource("bridge:udp://127.0.0.1:0", correct_drift=False)
    try:
        dst = src.local_address
        # Interleaved, the intruder B always sending last, its frames numbered and timed to follow
        # A's: the old listener spliced them in after A's audio and re-targeted control at B.
        a.sendto(hello("board-a"), dst)
        b.sendto(hello("intruder"), dst)
        for seq in range(1, 6):
            a.sendto(audio_raw(seq), dst)
            b.sendto(audio_raw(seq + 5, scale=-0.5), dst)
        y = concat(list(src.blocks(until_s=0.3)))
        np.testing.assert_array_equal(y, expected(range(5)))  # A's audio, sample for sample; none of B's
        h = src.health()
        assert h["device"]["device_id"] == "board-a"
        assert h["udp"]["foreign_datagrams"] == 6 and h["udp"]["datagrams_before_hello"] == 0
        assert h["udp"]["device_address"] == hostport(a) and h["udp"]["locked_by"] == "hello"
        assert src.send(P.SET_GAIN, P.gain_payload(-6.0))
        got = P.decode_frame(a.recv(65536))
        assert got.type == P.SET_GAIN and got.payload == P.gain_payload(-6.0)
        b.settimeout(0.2)
        with pytest.raises(TimeoutError):
            b.recv(65536)
    finally:
        src.close()


def test_a_device_named_in_the_uri_is_the_only_one_heard(devices):
    a, b = devices
    src = BridgeSource(f"bridge:udp://127.0.0.1:0?device={hostport(b)}", correct_drift=False)
    try:
        assert src.device_address == addr(b)
        assert src.send(P.START)  # known before the device has sent anything
        assert P.decode_frame(b.recv(65536)).type == P.START
        a.sendto(hello("intruder"), src.local_address)  # a HELLO does not take over a pinned lock
        for seq in range(1, 4):
            a.sendto(audio_raw(seq + 3, scale=-0.5), src.local_address)
            b.sendto(audio_raw(seq), src.local_address)
        y = concat(list(src.blocks(until_s=0.3)))
        np.testing.assert_array_equal(y, expected(range(3)))
        h = src.health()
        assert h["udp"]["foreign_datagrams"] == 4 and h["udp"]["locked_by"] == "uri" and h["device"] is None
    finally:
        src.close()


def test_nothing_is_heard_before_a_hello(devices):
    a, _ = devices
    src = BridgeSource("bridge:udp://127.0.0.1:0", correct_drift=False)
    try:
        assert not src.send(P.STOP)  # no device yet: nobody to send to
        for seq in range(1, 3):
            a.sendto(audio_raw(seq), src.local_address)
        a.sendto(hello("board-a", seq=3), src.local_address)
        for seq in range(4, 7):
            a.sendto(audio_raw(seq, first_seq=4), src.local_address)
        y = concat(list(src.blocks(until_s=0.3)))
        np.testing.assert_array_equal(y, expected(range(3)))
        assert src.health()["udp"]["datagrams_before_hello"] == 2
    finally:
        src.close()


def test_a_zero_hz_frame_over_udp_is_counted_not_fatal(devices):
    """The issue's repro: a CRC-valid frame with sample rate 0 killed the UDP link (ZeroDivisionError)."""
    a, _ = devices
    src = BridgeSource("bridge:udp://127.0.0.1:0", correct_drift=False)
    try:
        a.sendto(hello("board-a"), src.local_address)
        for seq in range(1, 5):
            a.sendto(audio_raw(seq, sample_rate_hz=0 if seq == 2 else RATE), src.local_address)
        blocks = list(src.blocks(until_s=0.3))
        assert [(b.gap, len(b.samples)) for b in blocks] == [(False, N), (True, N), (False, N), (False, N)]
        h = src.health()
        assert h["decoder"]["invalid_frames"] == 1 and "sample rate 0 Hz" in h["decoder"]["last_invalid"]
    finally:
        src.close()


def test_a_port_in_use_is_a_clear_error():
    s = device_socket()
    try:
        with pytest.raises(BridgeUriError, match=f"cannot listen on udp {hostport(s)}"):
            BridgeSource(f"bridge:udp://{hostport(s)}")
    finally:
        s.close()


@pytest.mark.parametrize("uri,names", [
    ("bridge:udp://127.0.0.1:5005?device=localhost:5005", "device='localhost:5005': expected device=IP:PORT"),
    ("bridge:udp://127.0.0.1:5005?device=10.0.0.7", "expected device=IP:PORT"),
    ("bridge:udp://127.0.0.1:5005?device=10.0.0.7:0", "port in 1..65535"),
    ("bridge:udp://127.0.0.1:5005?devcie=10.0.0.7:5005", "unknown parameter(s) devcie for udp (allowed: device, jitter)"),
    ("bridge:udp://127.0.0.1:5005?jitter=-1", "jitter=-1 is out of range; expected an integer in 0..1024"),
    ("bridge:udp://127.0.0.1:5005?jitter=many", "jitter='many' is not an integer"),
    ("bridge:udp://127.0.0.1:70000", "port: Port out of range"),
    ("bridge:udp://127.0.0.1", "no port"),
    ("bridge:udp://127.0.0.1:5005/x", "unexpected path '/x'"),
    ("bridge:serial:///dev/ttyACM0?baud=fast", "baud='fast' is not an integer"),
    ("bridge:serial:///dev/ttyACM0?speed=9600", "unknown parameter(s) speed for serial (allowed: baud)"),
    ("bridge:serial://dev/ttyACM0", "three slashes"),
])
def test_bad_uris_name_what_was_expected(uri, names):
    with pytest.raises(BridgeUriError) as e:
        parse_uri(uri)
    assert names in str(e.value) and "expected bridge:serial:///dev/ttyACM0" in str(e.value)
    assert "bridge:udp://[HOST]:PORT[?device=IP:PORT&jitter=N]" in str(e.value)
