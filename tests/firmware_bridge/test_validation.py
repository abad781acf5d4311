"""Every header field of a CRC-valid frame is checked; a bad one is a counted fault, never a crash."""

import shutil
import struct
import subprocess
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import cobs
from firmware_bridge import protocol as P
from firmware_bridge.link import BridgeLink, LinkConfig, concat
from firmware_bridge.reassembly import Reassembler
from firmware_bridge.stream import StreamDecoder

from .test_protocol import C_DIR, VECTORS

RATE = 48_000
N = 48  # samples per frame


def tone(seq, n=N):
    """Frame `seq`'s samples: L and R distinct, so a swapped or shifted frame is noticed."""
    t = np.arange(seq * n, (seq + 1) * n)
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t / RATE), 0.25 * np.cos(2 * np.pi * 300 * t / RATE)], axis=1)


def audio(seq, fmt=P.S16, payload=None, **fields):
    pcm = P.float_to_pcm(tone(seq), fmt) if payload is None else payload
    f = P.Frame(P.AUDIO, 0, 2, fmt, seq, int(round(seq * N * 1e6 / RATE)), RATE, pcm)
    return replace(f, **fields)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", P.crc32c(body))


def reserved_set(seq):
    raw = bytearray(P.encode_frame(audio(seq))[:-4])
    raw[7] = 1
    return with_crc(bytes(raw))


HELLO_0HZ = P.DeviceInfo((1, 0, 0), 0, P.S16, 2, 0.0, 150, "kemar-mit", "dev").pack()
# (case, raw frame at seq 2, what the refusal must name)
BAD_AUDIO = {
    "rate 0 Hz": (lambda s: P.encode_frame(audio(s, sample_rate_hz=0)), "sample rate 0 Hz"),
    "rate 1 MHz": (lambda s: P.encode_frame(audio(s, sample_rate_hz=1_000_000)), "sample rate 1000000 Hz"),
    "mono": (lambda s: P.encode_frame(audio(s, channels=1)), "1 channels, expected 2"),
    "unknown format": (lambda s: P.encode_frame(audio(s, sample_format=7)), "unknown sample format 7"),
    "format 0": (lambda s: P.encode_frame(audio(s, sample_format=0)), "unknown sample format 0"),
    "ragged payload": (lambda s: P.encode_frame(audio(s, payload=bytes(190))), "190 bytes is not a positive multiple of 4"),
    "empty payload": (lambda s: P.encode_frame(audio(s, payload=b"")), "0 bytes is not a positive multiple"),
    "unknown flag": (lambda s: P.encode_frame(audio(s, flags=0x80)), "unknown flag bits 0x80"),
    "timestamp past 2**53 us": (lambda s: P.encode_frame(audio(s, timestamp_us=1 << 60)), "device timestamp"),
    "reserved byte": (reserved_set, "reserved byte is 1"),
}
BAD_CONTROL = {
    "heartbeat with channels": (P.Frame(P.HEARTBEAT, 0, 2, P.S16, 2, 0, RATE, bytes(4)), "channels 2, format 1"),
    "heartbeat of 3 bytes": (P.Frame(P.HEARTBEAT, 0, 0, 0, 2, 0, RATE, bytes(3)), "heartbeat payload of 3 bytes"),
    "hello of 47 bytes": (P.Frame(P.HELLO, 0, 0, 0, 2, 0, RATE, bytes(47)), "hello payload of 47 bytes"),
    "hello announcing 0 Hz": (P.Frame(P.HELLO, 0, 0, 0, 2, 0, RATE, HELLO_0HZ), "hello announces sample rate 0 Hz"),
    "control at 5 Hz": (P.Frame(P.START, 0, 0, 0, 2, 0, 5, b""), "sample rate 5 Hz"),
    "unknown type": (P.Frame(9, 0, 0, 0, 2, 0, RATE, b""), "unknown message type 9"),
}


@pytest.mark.parametrize("case", list(BAD_AUDIO) + list(BAD_CONTROL))
def test_a_bad_field_is_refused_with_its_name(case):
    raw = BAD_AUDIO[case][0](2) if case in BAD_AUDIO else P.encode_frame(BAD_CONTROL[case][0])
    msg = (BAD_AUDIO.get(case) or BAD_CONTROL[case])[1]
    with pytest.raises(P.InvalidFrameError, match=msg.replace("*", r"\*")):
        P.decode_frame(raw)


def feed(link: BridgeLink, raws: list[bytes], datagrams: bool) -> list:
    blocks = []
    for i, raw in enumerate(raws):
        if datagrams:
            blocks += link.feed_datagram(raw, host_time_s=i * N / RATE)
        else:
            blocks += link.feed_bytes(cobs.encode(raw) + b"\x00", host_time_s=i * N / RATE)
    return blocks + link.flush()


@pytest.mark.parametrize("datagrams", [False, True], ids=["serial", "udp"])
@pytest.mark.parametrize("case", list(BAD_AUDIO))
def test_an_invalid_audio_frame_is_counted_and_becomes_a_gap(case, datagrams):
    """The issue's repro is "rate 0 Hz": it raised ZeroDivisionError inside reassembly."""
    raws = [P.encode_frame(audio(0)), P.encode_frame(audio(1)), BAD_AUDIO[case][0](2), P.encode_frame(audio(3))]
    link = BridgeLink(LinkConfig(correct_drift=False), datagrams=datagrams)
    blocks = feed(link, raws, datagrams)
    h = link.health()
    assert h.decoder["invalid_frames"] == 1 and h.decoder["frames_ok"] == 3
    assert BAD_AUDIO[case][1].split()[0] in h.decoder["last_invalid"]
    # the refused frame is a hole of exactly its length at its device time, like a lost frame
    assert [(b.gap, len(b.samples), round(b.device_time_s * RATE)) for b in blocks] == \
        [(False, N, 0), (False, N, N), (True, N, 2 * N), (False, N, 3 * N)]
    assert all(b.sample_rate_hz == RATE for b in blocks)
    good = P.pcm_to_float(b"".join(P.float_to_pcm(tone(s), P.S16) for s in (0, 1, 3)), P.S16, 2)
    y = concat(blocks)
    np.testing.assert_array_equal(np.concatenate([y[:2 * N], y[3 * N:]]), good)
    assert not y[2 * N:3 * N].any()


def test_an_invalid_hello_is_counted_and_leaves_the_device_unknown():
    link = BridgeLink(LinkConfig(correct_drift=False))
    frames = [P.encode_frame(audio(0)), P.encode_frame(BAD_CONTROL["hello announcing 0 Hz"][0])]
    feed(link, frames, datagrams=False)
    h = link.health()
    assert h.decoder["invalid_frames"] == 1 and h.device is None


@pytest.mark.parametrize("datagrams,jitter", [(False, 0), (True, 0), (True, 4)], ids=["serial", "udp", "udp-jitter4"])
def test_nan_or_inf_in_float32_audio_drops_the_frame_as_a_gap(datagrams, jitter):
    bad = {2: np.nan, 3: np.inf}
    raws = []
    for s in range(6):
        x = tone(s).astype(np.float32)
        if s in bad:
            x[7, 1] = bad[s]  # one sample of one ear is enough
        raws.append(P.encode_frame(audio(s, P.F32, payload=x.astype("<f4").tobytes())))
    link = BridgeLink(LinkConfig(jitter_frames=jitter, correct_drift=False), datagrams=datagrams)
    blocks = feed(link, raws, datagrams)
    y = concat(blocks)
    assert np.isfinite(y).all() and len(y) == 6 * N  # sample count still equals device time
    h = link.health()
    assert h.decoder["nonfinite_frames"] == 2 and h.decoder["invalid_frames"] == 0
    assert h.reassembly["gaps"] == 1 and h.reassembly["gap_samples"] == 2 * N
    gaps = [b for b in blocks if b.gap]
    assert len(gaps) == 1 and round(gaps[0].device_time_s * RATE) == 2 * N and not gaps[0].samples.any()
    np.testing.assert_array_equal(y[4 * N:], np.concatenate([tone(4), tone(5)]).astype(np.float32))


def test_nan_never_reaches_the_drift_resampler():
    """The old link fed the NaN to the resampler, which smeared it over a filter length of output."""
    raws = []
    for s in range(200):
        x = tone(s).astype(np.float32)
        if s == 20:
            x[0, 0] = np.nan
        raws.append(P.encode_frame(audio(s, P.F32, payload=x.astype("<f4").tobytes())))
    link = BridgeLink(LinkConfig(correct_drift=True))
    y = concat(feed(link, raws, datagrams=False))
    assert np.isfinite(y).all() and len(y) > 190 * N
    assert link.health().decoder["nonfinite_frames"] == 1


def test_one_wild_timestamp_does_not_silence_the_rest_of_the_stream():
    """A far-future timestamp pushed the expected sample index ahead: later frames were cut to nothing."""
    r = Reassembler()
    wild = audio(2, timestamp_us=3600 * 10**6)  # an hour ahead, CRC-valid, fields in range
    blocks = [b for f in (audio(0), audio(1), wild, audio(3), audio(4)) for b in r.push(f)]
    assert sum(len(b.samples) for b in blocks if not b.gap) == 5 * N  # nothing discarded
    assert blocks[-1].device_time_s == pytest.approx(4 * N / RATE) and len(blocks[-1].samples) == N
    assert r.stats.timestamp_jumps == 2 and r.stats.segments == 3  # there, and back again


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_frames_from_the_c_reference_encoder_pass_validation(tmp_path):
    exe = tmp_path / "encode_vectors"
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(C_DIR / "binaura_link.c"), str(C_DIR / "encode_vectors.c")], check=True)
    hello = P.DeviceInfo((1, 2, 3), 96_000, P.S24, 2, -3.0, 148, "kemar-mit", "board-7").pack()
    extra = [(P.AUDIO, P.DISCONTINUITY, 2, P.S24, 9, 10**12, 96_000, P.float_to_pcm(tone(1), P.S24)),
             (P.AUDIO, P.CLIPPED | P.DEVICE_OVERRUN, 2, P.S16, 10, 0, P.MIN_SAMPLE_RATE_HZ, bytes(4)),
             (P.AUDIO, 0, 2, P.F32, 11, 5, P.MAX_SAMPLE_RATE_HZ, P.float_to_pcm(tone(2), P.F32)),
             (P.HELLO, 0, 0, 0, 12, 0, 96_000, hello), (P.HEARTBEAT, 0, 0, 0, 13, 0, 0, bytes(4))]
    lines = [f"{v['type']} {v['flags']} {v['channels']} {v['format']} {v['seq']} {v['timestamp_us']} "
             f"{v['sample_rate_hz']} {v['payload_hex'] or '-'}" for v in VECTORS]
    lines += [" ".join(map(str, e[:7])) + f" {e[7].hex() or '-'}" for e in extra]
    out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         check=True).stdout.split()
    dec = StreamDecoder()
    frames = dec.feed(bytes.fromhex("".join(out)))
    assert len(frames) == len(VECTORS) + len(extra)
    assert dec.stats.invalid_frames == dec.stats.nonfinite_frames == dec.stats.framing_errors == 0
    assert [f.sample_rate_hz for f in frames[-5:]] == [96_000, 8_000, 192_000, 96_000, 0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 255), st.integers(0, 4), st.integers(0, 4),
                          st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 7999, 44_100, 48_000, 2**32 - 1]),
                          st.binary(max_size=64)), min_size=1, max_size=12),
       st.booleans())
def test_any_crc_valid_header_never_crashes_the_link(fields, datagrams):
    link = BridgeLink(LinkConfig(jitter_frames=2 if datagrams else 0), datagrams=datagrams)
    raws = [P.encode_frame(P.Frame(t, fl, ch, fmt, i, ts, rate, pl))
            for i, (t, fl, ch, fmt, ts, rate, pl) in enumerate(fields)]
    for b in feed(link, raws, datagrams):
        assert P.MIN_SAMPLE_RATE_HZ <= b.sample_rate_hz <= P.MAX_SAMPLE_RATE_HZ
        assert b.samples.shape[1] == 2 and np.isfinite(b.samples).all()
