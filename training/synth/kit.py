"""A portable synthesis kit: render training scenes on a machine without the Debian extras.

The synthesizer reads three things from the system: the MIT KEMAR set through
`slab` (which needs PortAudio), two freedesktop sound-theme recordings, and
speech from the espeak-ng and flite programs. A GPU machine with no package
manager has none of them. ``pack_kit`` writes what they provide into one small
folder (the KEMAR HRIRs as measured, the theme files, and a pool of rendered
training-voice utterances as FLAC); with ``BINAURA_SYNTH_KIT`` pointing at that
folder the synthesizer reads everything from it instead.

With a kit, speech is drawn from the pool: the utterance for a (voice, text,
speed, pitch) request is one of that voice's pooled utterances, chosen by the
request's hash, so scenes stay deterministic from (seed, index) but are not
bit-identical to scenes rendered with the TTS programs. Only training voices
are packed: a kit cannot render the benchmark's held-out voices.

One direction (issue 22): this module imports the sources to pack them and registers a
resolver with training.synth.assets; the sources ask assets.packed() and never import it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from agent.core.audio import resample_to
from agent.core.dataset import write_json
from agent.core.errors import BinauraError
from agent.core.outdir import OutputKind, output_folder
from training.synth import assets

KIT_ENV = "BINAURA_SYNTH_KIT"
KIT_FORMAT = "binaura-synth-kit-v1"
KIT_FILE = "kit.json"
#: Pool audio rate: the TTS voices render at 16-22.05 kHz, so 24 kHz keeps all they carry.
POOL_RATE_HZ = 24000
THEME_FILES = ("alarm-clock-elapsed.oga", "phone-incoming-call.oga")
#: A kit folder (and how one made before output markers is recognised).
KIT_KIND = OutputKind("synth-kit", manifest=KIT_FILE, names=("kemar.npz", "themes", "speech"))


def kit_dir() -> Path | None:
    """The kit named by BINAURA_SYNTH_KIT, checked; None when the variable is unset."""
    value = os.environ.get(KIT_ENV)
    if not value:
        return None
    return _checked(value)


@functools.lru_cache(maxsize=2)
def _checked(value: str) -> Path:
    path = Path(value)
    try:
        meta = json.loads((path / KIT_FILE).read_text())
    except (OSError, ValueError) as e:
        raise BinauraError(f"{KIT_ENV}={value}: not a synthesis kit ({KIT_FILE} unreadable: {e}); "
                           f"make one with `binaura synth-kit --out DIR`") from e
    if meta.get("format") != KIT_FORMAT:
        raise BinauraError(f"{KIT_ENV}={value}: expected format {KIT_FORMAT}, found {meta.get('format')!r}")
    return path


class KitAssets:
    """A kit folder as the sources' packed stand-in (training.synth.assets.PackedAssets)."""

    def __init__(self, root: Path):
        self.root = root

    def kemar_raw(self) -> tuple[np.ndarray, int, np.ndarray]:
        """(HRIRs (N, 2, taps) float64, rate, sources (N, 2) as slab's vertical-polar az/el)."""
        with np.load(self.root / "kemar.npz") as z:
            return z["hrir"].astype(np.float64), int(z["rate_hz"]), z["sources"].astype(np.float64)

    def theme_file(self, name: str) -> Path:
        return self.root / "themes" / name

    def utterance(self, engine: str, voice: str, key: str, rate_hz: int) -> np.ndarray:
        """A pooled utterance of (engine, voice) for the request hashed as key."""
        pool = _pool(str(self.root), rate_hz)
        items = pool.get(f"{engine}|{voice}")
        if not items:
            raise BinauraError(f"synthesis kit {self.root}: no utterances of {engine} voice {voice!r}; "
                               f"a kit holds the training voices only ({', '.join(sorted(pool))})")
        return items[int(key, 16) % len(items)]


def kit_assets() -> KitAssets | None:
    """The kit named by BINAURA_SYNTH_KIT as the sources' stand-in; None when unset."""
    root = kit_dir()
    return None if root is None else KitAssets(root)


assets.register(kit_assets)


@functools.lru_cache(maxsize=4)
def _pool(root: str, rate_hz: int) -> dict[str, list[np.ndarray]]:
    import soundfile as sf  # noqa: PLC0415

    meta = json.loads((Path(root) / KIT_FILE).read_text())
    pool: dict[str, list[np.ndarray]] = {}
    for voice, files in meta["speech"].items():
        for name in files:
            x, r = sf.read(str(Path(root) / "speech" / name), dtype="float64")
            if r != POOL_RATE_HZ:
                raise BinauraError(f"{root}/speech/{name}: {r} Hz, the kit says {POOL_RATE_HZ}")
            pool.setdefault(voice, []).append(resample_to(x, POOL_RATE_HZ, rate_hz))
    return pool


def pack_kit(out: str | os.PathLike, per_voice: int = 30, seed: int = 0) -> dict:
    """Write a kit to `out` (replaced atomically); returns its manifest.

    Needs what the synthesizer needs here (slab + PortAudio, the theme package,
    espeak-ng and flite); the utterances go through the speech cache.
    """
    if per_voice < 1:
        raise BinauraError(f"--per-voice must be >= 1, got {per_voice}")
    if os.environ.get(KIT_ENV):
        raise BinauraError(f"unset {KIT_ENV} to pack a kit: it is made from the system's own sources")
    with output_folder(out, KIT_KIND) as tmp:
        return _write_kit(tmp, per_voice, seed)


def _write_kit(tmp: Path, per_voice: int, seed: int) -> dict:
    import soundfile as sf  # noqa: PLC0415

    from training.synth import sounds, speech  # noqa: PLC0415
    from training.synth.hrtf import slab_kemar_raw  # noqa: PLC0415

    (tmp / "themes").mkdir()
    (tmp / "speech").mkdir()
    hrir, rate, sources = slab_kemar_raw()
    np.savez_compressed(tmp / "kemar.npz", hrir=hrir.astype(np.float32), rate_hz=rate, sources=sources)
    themes = []
    for name in THEME_FILES:
        src = sounds.FREEDESKTOP_DIR / name
        if not src.is_file():
            raise BinauraError(f"{src} missing: install the Debian package sound-theme-freedesktop")
        shutil.copyfile(src, tmp / "themes" / name)
        themes.append(name)
    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {}
    for engine, voice, lang in speech.TRAIN_VOICES:
        names = []
        for k in range(per_voice):
            sub = np.random.default_rng(int(rng.integers(0, 24)) + 1000 * len(voice))
            text = speech.sentence(sub, lang)
            speed, pitch = int(rng.integers(13, 19)) * 10, int(rng.integers(3, 7)) * 10
            x = speech.tts(engine, voice, text, POOL_RATE_HZ * 2, speed, pitch)
            x = resample_to(x, POOL_RATE_HZ * 2, POOL_RATE_HZ)
            x = x / max(1e-9, float(np.max(np.abs(x)))) * 0.9
            name = f"{voice.replace('+', '_')}-{engine}-{k:03d}.flac"
            sf.write(str(tmp / "speech" / name), x, POOL_RATE_HZ, subtype="PCM_16")
            names.append(name)
        lines[f"{engine}|{voice}"] = names
    digest = hashlib.sha256()
    for p in sorted(tmp.rglob("*")):
        if p.is_file():
            digest.update(p.relative_to(tmp).as_posix().encode())
            digest.update(p.read_bytes())
    manifest = {"format": KIT_FORMAT, "kemar_rate_hz": rate, "themes": themes, "speech": lines,
                "speech_rate_hz": POOL_RATE_HZ, "per_voice": per_voice, "seed": seed,
                "sha256": digest.hexdigest()}
    write_json(tmp / KIT_FILE, manifest)
    return manifest
