"""Byte stream -> verified frames: COBS delimiting, resync after corruption, counters."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge import cobs
from firmware_bridge.protocol import (
    MAX_FRAME,
    ORIENTATION,
    Frame,
    FrameError,
    InvalidFrameError,
    crc32c,
    decode_frame,
)


@dataclass
class DecoderStats:
    """Counters of one decoder. Every frame that is not `frames_ok` is counted in exactly one other."""

    bytes_in: int = 0
    frames_ok: int = 0
    crc_errors: int = 0
    framing_errors: int = 0  # COBS violations, bad magic/version/length, oversize
    invalid_frames: int = 0  # CRC holds, a field breaks the rules (rate, channels, format, length, ...)
    nonfinite_frames: int = 0  # float32 audio or orientation with NaN or Inf: dropped whole (audio: a gap)
    last_invalid: str = ""  # why the latest invalid or non-finite frame was refused (for bring-up)
    # Of the invalid and non-finite frames above, those of type ORIENTATION (wrong length,
    # NaN or Inf, a bad header field): a breakdown, not a further outcome.
    orientation_invalid: int = 0

    def count(self, err: FrameError) -> None:
        setattr(self, err.counter, getattr(self, err.counter) + 1)
        if isinstance(err, InvalidFrameError):
            self.last_invalid = str(err)
            if err.frame_type == ORIENTATION:
                self.orientation_invalid += 1


class StreamDecoder:
    """Feed any chunks of a COBS byte stream; get back only frames whose CRC holds.

    A corrupted or truncated frame is counted and skipped: decoding resumes at
    the next 0x00 delimiter. The very first block may be a partial frame
    (attached mid-stream) and is dropped the same way.
    """

    def __init__(self, max_frame: int = MAX_FRAME, crc=crc32c):
        self.crc = crc
        self.max_encoded = max_frame + max_frame // 254 + 2
        self.stats = DecoderStats()
        self._buf = bytearray()

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes) -> list[Frame]:
        self.stats.bytes_in += len(data)
        self._buf += data
        if b"\x00" not in data:
            if len(self._buf) > self.max_encoded:  # no delimiter for too long: drop, resync later
                self.stats.framing_errors += 1
                self._buf.clear()
            return []
        *blocks, rest = bytes(self._buf).split(b"\x00")
        self._buf = bytearray(rest)
        frames = []
        for block in blocks:
            if not block:
                continue  # back-to-back delimiters are allowed (idle fill)
            frame = self._decode(block)
            if frame is not None:
                frames.append(frame)
        return frames

    def _decode(self, block: bytes) -> Frame | None:
        if len(block) > self.max_encoded:
            self.stats.framing_errors += 1
            return None
        try:
            frame = decode_frame(cobs.decode(block), self.crc)
        except cobs.CobsError:
            self.stats.framing_errors += 1
            return None
        except FrameError as e:
            self.stats.count(e)
            return None
        self.stats.frames_ok += 1
        return frame


def decode_datagram(data: bytes, stats: DecoderStats, crc=crc32c) -> Frame | None:
    """One UDP datagram = one raw frame."""
    stats.bytes_in += len(data)
    try:
        frame = decode_frame(data, crc)
    except FrameError as e:
        stats.count(e)
        return None
    stats.frames_ok += 1
    return frame
