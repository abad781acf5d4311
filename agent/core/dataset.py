"""Dataset reader/writer with validation (dataset contract in ARCHITECTURE.md).

A dataset is a folder with scenes.jsonl, an optional qa.jsonl and audio/<id>.wav
(two channels L, R; >= 16 kHz; int16/int24/float32). Every problem is reported
with the file (and line) it comes from. Writers go through a temporary path and
an atomic rename so an interrupted run never leaves a file that looks complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from agent.core.audio import MIN_SAMPLE_RATE_HZ, N_CHANNELS
from agent.core.errors import DatasetError
from agent.core.scene import (
    AUDIO_PATH_FORM,
    QAItem,
    Scene,
    audio_path_problem,
    qa_from_json,
    scene_from_json,
)

SCENES_FILE = "scenes.jsonl"
QA_FILE = "qa.jsonl"
AUDIO_DIR = "audio"
WAV_SUBTYPES = {"int16": "PCM_16", "int24": "PCM_24", "float32": "FLOAT"}


@dataclass
class Dataset:
    root: Path
    scenes: list[Scene]
    qa: list[QAItem] = field(default_factory=list)

    def __post_init__(self):
        self.by_id = {s.id: s for s in self.scenes}

    def audio_path(self, scene: Scene) -> Path:
        """root / scene.audio, refused (DatasetError) unless it stays inside the dataset folder."""
        return resolve_audio_path(self.root, scene.audio)

    def load_audio(self, scene: Scene) -> tuple[np.ndarray, int]:
        return read_wav(self.audio_path(scene), expect_rate_hz=scene.sample_rate_hz)


def _read_jsonl(path: Path) -> Iterable[tuple[int, object]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DatasetError(str(path), f"cannot read: {e.strerror}") from e
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(str(path), f"invalid JSON ({e.msg} at column {e.colno})", i) from e


def resolve_audio_path(root: Path, audio: str, where: str | None = None) -> Path:
    """root / audio after checking it is a relative path that, with every symlink resolved,
    stays inside root; nothing is opened. Raises DatasetError naming the allowed form."""
    root = Path(root)
    path = root / audio if isinstance(audio, str) else root
    prefix = f"{where}: " if where else ""
    problem = audio_path_problem(audio)
    if problem:
        raise DatasetError(str(path), f"{prefix}{problem}")
    try:
        inside, target = root.resolve(), path.resolve()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop before Python 3.13
        raise DatasetError(str(path), f"{prefix}cannot resolve audio {audio!r} ({e}); "
                                      f"it must be {AUDIO_PATH_FORM}") from e
    if inside not in target.parents:
        raise DatasetError(str(path), f"{prefix}audio {audio!r} resolves to {target}, outside the dataset "
                                      f"folder {inside}; it must be {AUDIO_PATH_FORM}")
    return path


def read_dataset(root: str | os.PathLike, check_audio: bool = True) -> Dataset:
    """Read and validate a dataset folder.

    check_audio: also open every wav header (existence, 2 channels, rate matches).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(str(root), "not a dataset folder (expected a directory holding scenes.jsonl)")
    spath = root / SCENES_FILE
    if not spath.is_file():
        raise DatasetError(str(spath), "missing; a dataset folder must hold scenes.jsonl")
    scenes: list[Scene] = []
    seen: dict[str, int] = {}
    for lineno, obj in _read_jsonl(spath):
        scene, problems = scene_from_json(obj)
        if problems:
            raise DatasetError(str(spath), "; ".join(problems), lineno)
        if scene.id in seen:
            raise DatasetError(str(spath), f"duplicate scene id {scene.id!r} (first on line {seen[scene.id]})", lineno)
        seen[scene.id] = lineno
        if check_audio:
            where = f"{spath}:{lineno}"
            check_wav_header(resolve_audio_path(root, scene.audio, where), scene.sample_rate_hz, where=where)
        scenes.append(scene)
    if not scenes:
        raise DatasetError(str(spath), "holds no scenes")
    qa: list[QAItem] = []
    qpath = root / QA_FILE
    if qpath.is_file():
        for lineno, obj in _read_jsonl(qpath):
            item, problems = qa_from_json(obj)
            if problems:
                raise DatasetError(str(qpath), "; ".join(problems), lineno)
            if item.scene_id not in seen:
                raise DatasetError(str(qpath), f"scene_id {item.scene_id!r} is not in {SCENES_FILE}", lineno)
            qa.append(item)
    return Dataset(root, scenes, qa)


def check_wav_header(path: Path, expect_rate_hz: int | None = None, where: str | None = None) -> None:
    """Check a wav exists, is stereo (L, R) and has the expected rate, reading only its header."""
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise DatasetError(str(path), f"{prefix}audio file is missing")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DatasetError(str(path), f"{prefix}not a readable audio file ({e})") from e
    if info.channels != N_CHANNELS:
        raise DatasetError(str(path), f"{prefix}expected 2 channels (L, R), got {info.channels}")
    if info.samplerate < MIN_SAMPLE_RATE_HZ:
        raise DatasetError(str(path), f"{prefix}sample rate {info.samplerate} Hz is below {MIN_SAMPLE_RATE_HZ} Hz")
    if expect_rate_hz is not None and info.samplerate != expect_rate_hz:
        raise DatasetError(str(path), f"{prefix}sample rate {info.samplerate} Hz, but scenes.jsonl says {expect_rate_hz} Hz")


def read_wav(path: str | os.PathLike, expect_rate_hz: int | None = None) -> tuple[np.ndarray, int]:
    """Read a binaural wav as float32 (2, T) and its rate, validating the contract."""
    path = Path(path)
    check_wav_header(path, expect_rate_hz)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DatasetError(str(path), f"corrupt audio data ({e})") from e
    if data.shape[0] == 0:
        raise DatasetError(str(path), "holds no samples")
    return np.ascontiguousarray(data.T), int(rate)


def wav_blocks(path: str | os.PathLike, block_s: float = 10.0,
               expect_rate_hz: int | None = None) -> tuple[int, Iterator[np.ndarray]]:
    """A binaural wav read block by block: its rate, and (2, n) float32 blocks of block_s
    seconds (the last one shorter). The header is checked first; memory stays one block
    however long the file."""
    path = Path(path)
    check_wav_header(path, expect_rate_hz)
    rate = int(sf.info(str(path)).samplerate)
    if block_s <= 0:
        raise ValueError(f"block_s must be > 0, got {block_s}")

    def blocks() -> Iterator[np.ndarray]:
        n = 0
        try:
            with sf.SoundFile(str(path)) as f:
                for block in f.blocks(blocksize=max(1, int(block_s * rate)), dtype="float32", always_2d=True):
                    n += len(block)
                    yield np.ascontiguousarray(block.T)
        except (RuntimeError, sf.LibsndfileError) as e:
            raise DatasetError(str(path), f"corrupt audio data ({e})") from e
        if n == 0:
            raise DatasetError(str(path), "holds no samples")

    return rate, blocks()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: read once at import: os.umask can only be read by setting it
_FILE_MODE = 0o666 & ~_umask()


def _atomic_target(path: Path):
    """A fresh temp file beside `path`, to be renamed over it once complete. mkstemp makes it
    private (0600); it gets the mode a plain open() would give, so datasets and exported
    models stay readable by whoever may read the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    return Path(tmp)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate_hz: int,
              sample_format: str = "int16") -> None:
    """Write (2, T) float audio atomically as a wav in the given sample format."""
    path = Path(path)
    if sample_format not in WAV_SUBTYPES:
        raise ValueError(f"sample_format must be one of {list(WAV_SUBTYPES)}, got {sample_format!r}")
    tmp = _atomic_target(path)
    try:
        sf.write(str(tmp), np.asarray(audio, dtype=np.float32).T, sample_rate_hz,
                 subtype=WAV_SUBTYPES[sample_format], format="WAV")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, separators=(", ", ": ")) + "\n" for r in rows))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
