"""binaura link protocol, version 1 (docs/bridge-protocol.md; C mirror in c/binaura_link.h).

Every message is one frame, little-endian:

    off size field
    0   2    magic "BA" (0x42 0x41)
    2   1    version (1)
    3   1    type: AUDIO, HELLO, START, STOP, SET_GAIN, HEARTBEAT, ORIENTATION
    4   1    flags: DISCONTINUITY, CLIPPED, DEVICE_OVERRUN
    5   1    channels (2 for audio, order L, R; 0 for control and orientation)
    6   1    sample format: S16, S24, F32 (0 for control and orientation)
    7   1    reserved (0)
    8   4    sequence number (u32, wraps; one counter for every frame)
    12  8    device timestamp, microseconds (audio: of the frame's first sample;
             orientation: when the head had that orientation, on the audio's clock)
    20  4    sample rate, Hz
    24  2    payload length, bytes
    26  n    payload (audio: interleaved PCM; orientation: <ffff quaternion w, x, y, z)
    26+n 4   CRC-32C (Castagnoli) over bytes 0 .. 26+n-1

On a byte stream (USB CDC, UART) each frame is COBS-encoded and followed by
0x00; over UDP one datagram carries one raw frame.

A frame whose CRC holds is still checked field by field (`check_fields`): a
CRC only proves the bytes arrived as sent, not that the sender followed the
protocol. Every rejection is a FrameError whose `counter` names the decoder
statistic it is counted under, so a bad frame is a counted fault, never a
crash further down (a sample rate of 0 used to divide by zero in reassembly).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"BA"
VERSION = 1
HEADER = struct.Struct("<2sBBBBBBIQIH")
HEADER_SIZE = HEADER.size  # 26
CRC_SIZE = 4
MAX_PAYLOAD = 16384
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE

# Message types. A host that predates a type refuses it as "unknown message type" (a counted
# invalid frame); the header layout never changes within version 1, so its audio is unaffected.
AUDIO, HELLO, START, STOP, SET_GAIN, HEARTBEAT, ORIENTATION = range(7)
TYPE_NAMES = {AUDIO: "audio", HELLO: "hello", START: "start", STOP: "stop", SET_GAIN: "set_gain",
              HEARTBEAT: "heartbeat", ORIENTATION: "orientation"}
# Flags.
DISCONTINUITY = 0x01  # first frame after start or a device restart: do not bridge to earlier audio
CLIPPED = 0x02
DEVICE_OVERRUN = 0x04  # the device lost samples before framing them (its own buffer overflowed)
# Sample formats: (name, bytes per sample).
S16, S24, F32 = 1, 2, 3
FORMATS = {S16: ("s16", 2), S24: ("s24", 3), F32: ("f32", 4)}
FORMAT_BY_NAME = {v[0]: k for k, v in FORMATS.items()}

HELLO_STRUCT = struct.Struct("<BBBBIBBhHH16s16s")  # 48 bytes
# ORIENTATION payload: the head-to-world rotation as a quaternion (w, x, y, z), float32. It rotates
# head-frame vectors (+x ahead, +y left, +z up) into a world frame fixed by the device (docs/turning.md).
ORIENTATION_STRUCT = struct.Struct("<4f")  # 16 bytes

# What a valid frame may carry (docs/bridge-protocol.md, "Validation").
KNOWN_FLAGS = DISCONTINUITY | CLIPPED | DEVICE_OVERRUN
AUDIO_CHANNELS = 2  # binaural: L, R interleaved
MIN_SAMPLE_RATE_HZ = 8_000
MAX_SAMPLE_RATE_HZ = 192_000
# Sample indices are computed through float64 (timestamp_us * rate / 1e6): exact below 2**53 us.
MAX_TIMESTAMP_US = (1 << 53) - 1
# Fixed payload lengths of every type but AUDIO.
CONTROL_PAYLOAD_BYTES = {HELLO: HELLO_STRUCT.size, START: 0, STOP: 0, SET_GAIN: 2, HEARTBEAT: 4,
                         ORIENTATION: ORIENTATION_STRUCT.size}


class FrameError(ValueError):
    """A frame that must not be used. `counter` names the DecoderStats field that counts it;
    `frame_type` is the type byte of a frame whose CRC held (None when the bytes are not to be
    trusted), so refusals can also be told apart by type."""

    counter = "framing_errors"  # bad magic, version or length: the bytes are not a frame
    frame_type: int | None = None


class CrcError(FrameError):
    counter = "crc_errors"


class InvalidFrameError(FrameError):
    """The CRC holds but a field breaks the protocol (a firmware bug or a stray sender)."""

    counter = "invalid_frames"


class NonFiniteError(InvalidFrameError):
    """A float32 payload holding NaN or Inf: the whole frame is dropped (audio: it becomes a gap;
    orientation: the sample is missing)."""

    counter = "nonfinite_frames"


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c_py(data: bytes, crc: int = 0) -> int:
    """Reference CRC-32C (reflected 0x1EDC6F41), byte at a time: slow, dependency-free."""
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


try:  # the crc32c package computes the same function in C (SSE4.2 where present)
    from crc32c import crc32c as _crc32c_fast

    def crc32c(data: bytes) -> int:
        return _crc32c_fast(data)
except ImportError:  # pragma: no cover - exercised where crc32c is absent
    crc32c = crc32c_py


@dataclass
class Frame:
    type: int
    flags: int
    channels: int
    sample_format: int
    seq: int
    timestamp_us: int
    sample_rate_hz: int
    payload: bytes

    @property
    def n_samples(self) -> int:
        """Sample frames (per channel) in an audio payload."""
        if self.type != AUDIO or not self.channels:
            return 0
        return len(self.payload) // (self.channels * FORMATS[self.sample_format][1])

    def pcm(self) -> np.ndarray:
        """Audio payload as float32 (n_samples, channels), full scale = 1.0."""
        return pcm_to_float(self.payload, self.sample_format, self.channels)

    def quaternion(self) -> tuple[float, float, float, float]:
        """An ORIENTATION payload as (w, x, y, z): as sent, not normalised."""
        if self.type != ORIENTATION:
            raise FrameError(f"a {TYPE_NAMES.get(self.type, self.type)} frame carries no quaternion")
        return ORIENTATION_STRUCT.unpack(self.payload)


def encode_frame(frame: Frame) -> bytes:
    """Serialise a frame with its CRC (raw, not COBS-encoded)."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise FrameError(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    head = HEADER.pack(MAGIC, VERSION, frame.type, frame.flags, frame.channels, frame.sample_format, 0,
                       frame.seq & 0xFFFFFFFF, frame.timestamp_us, frame.sample_rate_hz, len(frame.payload))
    body = head + frame.payload
    return body + struct.pack("<I", crc32c(body))


def decode_frame(raw: bytes, crc=crc32c) -> Frame:
    """Parse and verify one raw frame; raise FrameError naming what is wrong."""
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than header + CRC ({HEADER_SIZE + CRC_SIZE})")
    magic, version, mtype, flags, channels, fmt, reserved, seq, ts, rate, plen = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise FrameError(f"protocol version {version}, this host speaks {VERSION}")
    if plen > MAX_PAYLOAD:
        raise FrameError(f"payload length {plen} exceeds {MAX_PAYLOAD}")
    if len(raw) != HEADER_SIZE + plen + CRC_SIZE:
        raise FrameError(f"length {len(raw)} does not match payload length {plen}")
    (want,) = struct.unpack_from("<I", raw, HEADER_SIZE + plen)
    if crc(raw[: HEADER_SIZE + plen]) != want:
        raise CrcError("CRC-32C mismatch")
    frame = Frame(mtype, flags, channels, fmt, seq, ts, rate, bytes(raw[HEADER_SIZE:HEADER_SIZE + plen]))
    try:
        check_fields(frame, reserved)
    except FrameError as e:
        e.frame_type = mtype
        raise
    return frame


def _rate_ok(rate_hz: int) -> bool:
    return MIN_SAMPLE_RATE_HZ <= rate_hz <= MAX_SAMPLE_RATE_HZ


def check_fields(frame: Frame, reserved: int = 0) -> None:
    """Raise InvalidFrameError naming the first field of a CRC-valid frame that breaks the rules.

    The sequence number is any u32 (it wraps); its continuity is the reassembler's business.
    """
    t = frame.type
    if t not in TYPE_NAMES:
        raise InvalidFrameError(f"unknown message type {t} (known: {sorted(TYPE_NAMES)})")
    if reserved:
        raise InvalidFrameError(f"reserved byte is {reserved}, must be 0")
    if frame.flags & ~KNOWN_FLAGS:
        raise InvalidFrameError(f"unknown flag bits 0x{frame.flags & ~KNOWN_FLAGS:02x} (known: 0x{KNOWN_FLAGS:02x})")
    if frame.timestamp_us > MAX_TIMESTAMP_US:
        raise InvalidFrameError(f"device timestamp {frame.timestamp_us} us exceeds {MAX_TIMESTAMP_US}")
    n = len(frame.payload)
    if t != AUDIO:
        if frame.channels or frame.sample_format:
            raise InvalidFrameError(f"{TYPE_NAMES[t]} frame with channels {frame.channels}, format "
                                    f"{frame.sample_format}; control and orientation frames carry 0 for both")
        if frame.sample_rate_hz and not _rate_ok(frame.sample_rate_hz):
            raise InvalidFrameError(f"{TYPE_NAMES[t]} frame with sample rate {frame.sample_rate_hz} Hz; "
                                    f"expected 0 or {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz")
        if n != CONTROL_PAYLOAD_BYTES[t]:
            raise InvalidFrameError(f"{TYPE_NAMES[t]} payload of {n} bytes, expected {CONTROL_PAYLOAD_BYTES[t]}")
        if t == HELLO:
            check_hello(DeviceInfo.unpack(frame.payload))
        elif t == ORIENTATION and not all(math.isfinite(v) for v in ORIENTATION_STRUCT.unpack(frame.payload)):
            # The norm is not checked here: the host's orientation input refuses a quaternion
            # far from unit length with a warning and normalises a near one (docs/bridge-protocol.md).
            raise NonFiniteError("orientation quaternion holds NaN or Inf")
        return
    if not _rate_ok(frame.sample_rate_hz):
        raise InvalidFrameError(f"audio sample rate {frame.sample_rate_hz} Hz outside "
                                f"{MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz")
    if frame.channels != AUDIO_CHANNELS:
        raise InvalidFrameError(f"audio frame with {frame.channels} channels, expected {AUDIO_CHANNELS} (L, R)")
    if frame.sample_format not in FORMATS:
        raise InvalidFrameError(f"unknown sample format {frame.sample_format} "
                                f"(known: {', '.join(f'{k} {v[0]}' for k, v in FORMATS.items())})")
    stride = frame.channels * FORMATS[frame.sample_format][1]
    if n == 0 or n % stride:
        raise InvalidFrameError(f"audio payload of {n} bytes is not a positive multiple of {stride} "
                                f"({frame.channels} channels x {FORMATS[frame.sample_format][0]})")
    if frame.sample_format == F32 and not np.isfinite(np.frombuffer(frame.payload, "<f4")).all():
        raise NonFiniteError("float32 audio payload holds NaN or Inf")


def check_hello(info: DeviceInfo) -> None:
    """The HELLO describes the audio stream: the same rules as an audio header."""
    if not _rate_ok(info.sample_rate_hz):
        raise InvalidFrameError(f"hello announces sample rate {info.sample_rate_hz} Hz outside "
                                f"{MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz")
    if info.sample_format not in FORMATS or info.channels != AUDIO_CHANNELS:
        raise InvalidFrameError(f"hello announces format {info.sample_format}, {info.channels} channels; "
                                f"expected one of {sorted(FORMATS)} and {AUDIO_CHANNELS} channels")


def pcm_to_float(payload: bytes, fmt: int, channels: int) -> np.ndarray:
    if fmt == S16:
        x = np.frombuffer(payload, "<i2").astype(np.float32) / 32768.0
    elif fmt == F32:
        x = np.frombuffer(payload, "<f4").astype(np.float32)
    elif fmt == S24:
        b = np.frombuffer(payload, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v & 0x800000, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    else:
        raise FrameError(f"unknown sample format {fmt}")
    return x.reshape(-1, channels)


def float_to_pcm(x: np.ndarray, fmt: int) -> bytes:
    """(n, channels) float in [-1, 1] -> interleaved little-endian PCM."""
    x = np.asarray(x, dtype=np.float64)
    if fmt == S16:
        return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    if fmt == F32:
        return x.astype("<f4").tobytes()
    if fmt == S24:
        v = np.clip(np.round(x * (1 << 23)), -(1 << 23), (1 << 23) - 1).astype(np.int32).reshape(-1)
        v = v & 0xFFFFFF
        return np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    raise FrameError(f"unknown sample format {fmt}")


@dataclass
class DeviceInfo:
    """The HELLO message: what the board is and how it is set up."""

    firmware: tuple[int, int, int]
    sample_rate_hz: int
    sample_format: int
    channels: int
    gain_db: float
    mic_spacing_mm: int
    hrtf_id: str
    device_id: str
    mic_kind: int = 1  # 1 = I2S MEMS

    def pack(self) -> bytes:
        return HELLO_STRUCT.pack(*self.firmware, self.mic_kind, self.sample_rate_hz, self.sample_format,
                                 self.channels, int(round(self.gain_db * 256)), self.mic_spacing_mm, 0,
                                 self.hrtf_id.encode()[:16], self.device_id.encode()[:16])

    @classmethod
    def unpack(cls, payload: bytes) -> DeviceInfo:
        if len(payload) != HELLO_STRUCT.size:
            raise FrameError(f"hello payload of {len(payload)} bytes, expected {HELLO_STRUCT.size}")
        ma, mi, pa, kind, rate, fmt, ch, gain, spacing, _r, hrtf, dev = HELLO_STRUCT.unpack(payload)
        return cls((ma, mi, pa), rate, fmt, ch, gain / 256.0, spacing,
                   hrtf.rstrip(b"\0").decode(errors="replace"), dev.rstrip(b"\0").decode(errors="replace"), kind)


def gain_payload(gain_db: float) -> bytes:
    return struct.pack("<h", int(round(gain_db * 256)))


def orientation_payload(quaternion) -> bytes:
    """(w, x, y, z) -> the 16-byte ORIENTATION payload (float32 each, as given: not normalised)."""
    q = tuple(float(v) for v in quaternion)
    if len(q) != 4:
        raise ValueError(f"a quaternion is 4 numbers (w, x, y, z), got {len(q)}")
    return ORIENTATION_STRUCT.pack(*q)
