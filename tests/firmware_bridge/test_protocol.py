"""Frames, COBS, CRC-32C and the C reference encoder against shared golden vectors."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import cobs
from firmware_bridge import protocol as P
from firmware_bridge.stream import StreamDecoder

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text())
C_DIR = Path(P.__file__).parent / "c"


def test_crc32c_check_value():
    # The standard check value of CRC-32C for "123456789".
    assert P.crc32c(b"123456789") == 0xE3069283
    assert P.crc32c_py(b"123456789") == 0xE3069283


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00", b"abc", bytes(range(256)) * 3, b"\x01" * 254,
                                  b"\x01" * 255, b"\x01" * 253 + b"\x00"])
def test_cobs_round_trip_has_no_zero(data):
    enc = cobs.encode(data)
    assert 0 not in enc
    assert cobs.decode(enc) == data


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"type{v['type']}-fmt{v['format']}")
def test_python_matches_golden_vectors(v):
    f = P.Frame(v["type"], v["flags"], v["channels"], v["format"], v["seq"], v["timestamp_us"],
                v["sample_rate_hz"], bytes.fromhex(v["payload_hex"]))
    assert (cobs.encode(P.encode_frame(f)) + b"\x00").hex() == v["stream_hex"]
    (back,) = StreamDecoder().feed(bytes.fromhex(v["stream_hex"]))
    assert back == f


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_reference_encoder_matches_byte_for_byte(tmp_path):
    exe = tmp_path / "encode_vectors"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(C_DIR / "binaura_link.c"), str(C_DIR / "encode_vectors.c")], check=True)
    lines = "".join(f"{v['type']} {v['flags']} {v['channels']} {v['format']} {v['seq']} {v['timestamp_us']} "
                    f"{v['sample_rate_hz']} {v['payload_hex'] or '-'}\n" for v in VECTORS)
    out = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True).stdout.split()
    assert out == [v["stream_hex"] for v in VECTORS]


@pytest.mark.parametrize("fmt", [P.S16, P.S24, P.F32])
def test_pcm_round_trip_and_channel_order(fmt):
    x = np.stack([np.linspace(-0.9, 0.9, 50), np.full(50, 0.25)], axis=1)
    y = P.pcm_to_float(P.float_to_pcm(x, fmt), fmt, 2)
    np.testing.assert_allclose(y, x, atol=1 / 32768)
    assert np.all(y[:, 1] == pytest.approx(0.25, abs=1e-4))  # column 1 is R


def test_hello_round_trip():
    info = P.DeviceInfo((1, 2, 3), 48000, P.S24, 2, -3.5, 148, "kemar-mit", "robot-head-01")
    assert P.DeviceInfo.unpack(info.pack()) == info


def test_corruption_is_rejected_and_the_stream_resyncs():
    frames = [P.Frame(P.AUDIO, 0, 2, P.S16, i, i * 1000, 48000, bytes(range(1, 193))) for i in range(3)]
    stream = bytearray(b"".join(cobs.encode(P.encode_frame(f)) + b"\x00" for f in frames))
    first_len = len(cobs.encode(P.encode_frame(frames[0]))) + 1
    stream[first_len + 40] ^= 0x10  # damage the second frame only
    dec = StreamDecoder()
    got = dec.feed(bytes(stream[:7])) + dec.feed(bytes(stream[7:]))  # any chunking
    assert [f.seq for f in got] == [0, 2]
    assert dec.stats.crc_errors + dec.stats.framing_errors == 1


def test_bad_header_fields_name_the_problem():
    raw = bytearray(P.encode_frame(P.Frame(P.AUDIO, 0, 2, P.S16, 1, 0, 48000, bytes(8))))
    raw[2] = 9
    with pytest.raises(P.FrameError, match="protocol version 9"):
        P.decode_frame(bytes(raw))
    with pytest.raises(P.FrameError, match="shorter than header"):
        P.decode_frame(b"BA\x01")
