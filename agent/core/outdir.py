"""Output folders written whole or not at all, and never over a folder binaura did not make.

Every command that writes a folder (an encoder export, a feature cache, a synthesis kit)
builds it in a fresh temp folder beside the target and swaps it in at the end. The swap
replaces only a folder this tool made: one holding the marker file `MARKER` of the same
kind, an empty folder, or an older output recognised by its own files (a manifest plus
only the names that kind of output contains). A folder holding anything else is refused
with a message naming what is there, before any work starts and again just before the
swap. On Linux the swap is one `renameat2(RENAME_EXCHANGE)`, so the target is never
missing; elsewhere it falls back to two renames.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fnmatch
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.core.errors import BinauraError

#: The file that says which binaura output a folder is.
MARKER = ".binaura-output.json"
MARKER_FORMAT = "binaura-output-v1"


@dataclass(frozen=True)
class OutputKind:
    """One kind of output folder. name: written into the marker. manifest and names: how an
    output written before markers existed is recognised (the manifest file is present and
    every top-level entry matches one of the glob patterns in names)."""

    name: str
    manifest: str | None = None
    names: tuple[str, ...] = ()


def _marker_kind(folder: Path) -> str | None:
    try:
        m = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return m.get("kind") if isinstance(m, dict) and m.get("format") == MARKER_FORMAT else None


def replaceable(folder: Path, kind: OutputKind) -> str | None:
    """None when `folder` may be replaced by an output of `kind`; else why not."""
    if not os.path.lexists(folder):
        return None
    if folder.is_symlink() or not folder.is_dir():
        return f"{folder} exists and is not a folder"
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return None
    made = _marker_kind(folder)
    if made == kind.name:
        return None
    if made is not None:
        return f"{folder} holds a binaura {made!r} output, not {kind.name!r}"
    if kind.manifest and kind.manifest in entries and all(
            any(fnmatch.fnmatchcase(e, pat) for pat in (kind.manifest, *kind.names)) for e in entries):
        return None
    foreign = [e for e in entries if not any(fnmatch.fnmatchcase(e, p) for p in (kind.manifest or "", *kind.names))]
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return (f"{folder} is not empty and was not written by binaura as a {kind.name!r} output "
            f"(it holds {shown or ', '.join(entries[:5])})")


def check_replaceable(folder: str | os.PathLike, kind: OutputKind) -> None:
    """Raise BinauraError, naming what is there, if `folder` may not be replaced."""
    why = replaceable(Path(folder), kind)
    if why:
        raise BinauraError(f"refusing to overwrite: {why}; choose a new or empty folder, or remove it yourself")


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # a filesystem or kernel without the exchange flag
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def _swap_in(tmp: Path, out: Path) -> None:
    if not os.path.lexists(out):
        os.replace(tmp, out)
        return
    if _exchange(tmp, out):
        shutil.rmtree(tmp)  # tmp now holds the previous output
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(tmp, out)
    shutil.rmtree(old)


@contextlib.contextmanager
def output_folder(out: str | os.PathLike, kind: OutputKind) -> Iterator[Path]:
    """A fresh temp folder beside `out` to write into; on a clean exit it is marked and
    swapped in for `out` (replacing only what `replaceable` allows); on an error, or an
    interrupt, it is removed and `out` is left as it was."""
    out = Path(out)
    check_replaceable(out, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps({"format": MARKER_FORMAT, "kind": kind.name}) + "\n")
        check_replaceable(out, kind)  # the folder may have changed while we worked
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
