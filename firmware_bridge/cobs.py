"""Consistent Overhead Byte Stuffing (Cheshire & Baker 1999).

Encoded data holds no zero byte, so 0x00 delimits frames on a byte stream and
a receiver resynchronises at the next delimiter after any corruption. Both
directions work block by block (bytes.split / slicing), not byte by byte.
"""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def encode(data: bytes) -> bytes:
    """COBS-encode data (no trailing delimiter). Overhead: 1 byte per 254, at most."""
    out = bytearray()
    for piece in bytes(data).split(b"\x00"):
        # A piece longer than 254 bytes is split into 0xFF blocks with no implied zero.
        while len(piece) >= 254:
            out.append(0xFF)
            out += piece[:254]
            piece = piece[254:]
        out.append(len(piece) + 1)
        out += piece
    return bytes(out)


def decode(enc: bytes) -> bytes:
    """Decode one COBS block (without the 0x00 delimiter); raise CobsError if malformed."""
    out = bytearray()
    i, n = 0, len(enc)
    if n == 0:
        raise CobsError("empty COBS block")
    while i < n:
        code = enc[i]
        if code == 0:
            raise CobsError(f"zero byte inside a COBS block at offset {i}")
        end = i + code
        if end > n:
            raise CobsError(f"COBS code {code} at offset {i} runs past the end ({n} bytes)")
        block = enc[i + 1:end]
        if 0 in block:
            raise CobsError("zero byte inside a COBS block")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)
