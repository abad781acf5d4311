"""Property-based fuzzing of the decoder, with a fixed budget (hypothesis)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import cobs
from firmware_bridge import protocol as P
from firmware_bridge.stream import StreamDecoder

BUDGET = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(f: P.Frame) -> bool:
    raw = P.encode_frame(f)
    return P.crc32c(raw[:-4]) == int.from_bytes(raw[-4:], "little")


@BUDGET
@given(st.binary(max_size=4096), st.integers(1, 64))
def test_arbitrary_bytes_never_crash_and_never_yield_a_bad_frame(data, chunk):
    dec = StreamDecoder()
    for i in range(0, len(data), chunk):
        for f in dec.feed(data[i:i + chunk]):
            assert _valid(f)


@BUDGET
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_damaged_valid_streams_only_yield_sent_frames(payloads, flips):
    frames = [P.Frame(P.HEARTBEAT, 0, 0, 0, i, i, 48000, p) for i, p in enumerate(payloads)]
    stream = bytearray(b"".join(cobs.encode(P.encode_frame(f)) + b"\x00" for f in frames))
    for pos, mask in flips:
        stream[pos % len(stream)] ^= mask
    got = StreamDecoder().feed(bytes(stream))
    sent = {(f.seq, f.payload) for f in frames}
    assert all((f.seq, f.payload) in sent for f in got)


@BUDGET
@given(st.binary(max_size=2000))
def test_cobs_round_trip(data):
    assert cobs.decode(cobs.encode(data)) == data
