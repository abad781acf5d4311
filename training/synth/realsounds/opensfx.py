"""The openttd-opensfx `opensfx.cat` container: named RIFF-WAV entries in one file.

Layout (REAL_WORLD.md): the first little-endian u32 (& 0x7fffffff) is 8 x N; then N pairs
(u32 offset & 0x7fffffff, u32 size); each entry is a u8 name length, the name (a full
credit string: title, original file and author, license), then `size` bytes of RIFF-WAV
(size counts the WAV only: checked on opensfx 1.0.3, whose empty entries 34 and 50 have
size 44, a bare WAV header, behind 80-byte names).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from agent.core.errors import BinauraError

_MASK = 0x7FFFFFFF


@dataclass(frozen=True)
class CatEntry:
    index: int
    credit: str
    wav: bytes  # RIFF-WAV bytes, possibly a header only (an empty sound)

    @property
    def title(self) -> str:
        m = re.match(r'\s*"([^"]*)"', self.credit)
        return m.group(1) if m else self.credit[:60]

    @property
    def license(self) -> str | None:
        m = re.search(r"License:\s*([^.]+(?:\.\d[^.]*)?)", self.credit)
        return m.group(1).strip() if m else None

    @property
    def original(self) -> str | None:
        """The source recording the entry was edited from ("Original "x.wav" by ..."), if named."""
        m = re.search(r'Original\s+"([^"]+)"', self.credit)
        return m.group(1) if m else None


def parse_cat(data: bytes, where: str = "opensfx.cat") -> list[CatEntry]:
    """Every entry of a .cat container, in order. Raises BinauraError naming what is malformed."""
    if len(data) < 8:
        raise BinauraError(f"{where}: {len(data)} bytes, expected at least one 8-byte index entry")
    first = struct.unpack_from("<I", data, 0)[0] & _MASK
    if first % 8 or first == 0 or first > len(data):
        raise BinauraError(f"{where}: index size {first} is not a positive multiple of 8 within the file")
    entries = []
    for i in range(first // 8):
        off, size = struct.unpack_from("<II", data, 8 * i)
        off &= _MASK
        n = data[off] if off < len(data) else 0
        if off >= len(data) or off + 1 + n + size > len(data):
            raise BinauraError(f"{where}: entry {i} (offset {off}, name {n} bytes, size {size}) lies outside "
                               f"the {len(data)}-byte file")
        credit = data[off + 1:off + 1 + n].decode("latin-1").rstrip("\0")
        entries.append(CatEntry(i, credit, data[off + 1 + n:off + 1 + n + size]))
    return entries
