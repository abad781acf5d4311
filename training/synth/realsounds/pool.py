"""Draw real recordings for scenes: a source signal of a class, or a real ambience bed.

The kit (catalog.py) is found at BINAURA_REAL_SOUNDS, else BINAURA_CACHE/real-sounds
(``make sounds`` builds it there). Training scenes draw only train recordings, benchmark
scenes (held-out instances) only held-out ones. Band-limited files (below 32 kHz: no pinna
cues) are drawn with a lower weight. Every draw comes from the generator the caller passes,
so scenes stay deterministic from (seed, index).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np

from agent.core.audio import resample_to
from agent.core.errors import BinauraError
from training.synth.realsounds.catalog import CATALOG_FILE, FORMAT, SUMMARY_FILE
from training.synth.realsounds.split import HELD_OUT, TRAIN, TRAIN_HALVES, train_half, unit_of

REAL_SOUNDS_ENV = "BINAURA_REAL_SOUNDS"
#: Pauses between the words of one real talker, and between repeats of a short clip (s).
WORD_GAP_S = (0.08, 0.45)
REPEAT_GAP_S = (0.15, 1.0)


def default_root() -> Path:
    if os.environ.get(REAL_SOUNDS_ENV):
        return Path(os.environ[REAL_SOUNDS_ENV])
    return Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura")) / "real-sounds"


def split_for(held_out: bool) -> str:
    return HELD_OUT if held_out else TRAIN


class RealSounds:
    """A built real-sounds kit: its catalog indexed by (class or ambience, split)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        try:
            meta = json.loads((self.root / SUMMARY_FILE).read_text())
            rows = [json.loads(line) for line in (self.root / CATALOG_FILE).read_text().splitlines() if line]
        except (OSError, ValueError) as e:
            raise BinauraError(f"no real-sounds kit at {self.root} ({e}); build it with `make sounds` or "
                               f"`binaura synth-sounds --out {self.root}`, or set {REAL_SOUNDS_ENV}") from e
        if meta.get("format") != FORMAT:
            raise BinauraError(f"{self.root}: expected a {FORMAT} kit, found {meta.get('format')!r}")
        self.meta = meta  # the kit's summary
        self.entries = {r["id"]: r for r in rows}
        self._index: dict[tuple[str, str], list[str]] = {}
        self._halves: dict[tuple[str, str, str], list[str]] = {}
        for r in rows:
            key = r["label"] if r["kind"] == "sound" else "ambience"
            self._index.setdefault((key, r["split"]), []).append(r["id"])

    def ids(self, label: str, split: str, half: str = "") -> list[str]:
        """Entry ids of a class (or "ambience") on one side of the split, in catalog order; with
        half ("a" or "b", the train side only), those of that half of the train side (split.train_half)."""
        ids = self._index.get((label, split), [])
        if not half:
            return ids
        if half not in TRAIN_HALVES or split != TRAIN:
            raise BinauraError(f"a half of the kit is one of {TRAIN_HALVES} of its {TRAIN!r} side, got "
                               f"half {half!r} of {split!r}")
        key = (label, split, half)
        if key not in self._halves:  # hashed once per class, not per draw
            self._halves[key] = [i for i in ids if train_half(self.entries[i]) == half]
        return self._halves[key]

    def pick(self, label: str, split: str, rng: np.random.Generator, band_limited_weight: float,
             avoid: Collection[str] = (), again: np.random.Generator | None = None, half: str = "") -> str | None:
        """An entry id of the class on that side (and half, `ids`), band-limited ones weighted down;
        None when there is none.

        avoid: entries other sources of the scene already play. A draw that would play one of
        their recordings again (another source of the same sound-maker, see apart) is drawn once
        more, from `again` (default rng), among the entries apart from them; any other draw, and
        rng's stream, stay as without avoid. A side holding nothing apart plays one again.
        """
        ids = self.ids(label, split, half)
        if not ids:
            return None
        w = np.array([band_limited_weight if self.entries[i]["band_limited"] else 1.0 for i in ids])
        if w.sum() <= 0:
            return None
        found = ids[int(rng.choice(len(ids), p=w / w.sum()))]
        if not avoid:
            return found
        kept = self.apart(ids, w, avoid)
        if kept[ids.index(found)] > 0:
            return found
        return ids[int((rng if again is None else again).choice(len(ids), p=kept / kept.sum()))]

    def apart(self, ids: list[str], w: np.ndarray, avoid: Collection[str]) -> np.ndarray:
        """The draw weights w of ids with the entries in avoid passed over, as far as the pool allows:
        every file of their recordings (or speakers: one talker's words are one person), else their
        files only (takes of one recording), else none (a pool of one file is played twice)."""
        units = {unit_of(self.entries[a]) for a in avoid}
        for same in (lambda i: unit_of(self.entries[i]) in units, lambda i: i in avoid):
            kept = w * np.array([not same(i) for i in ids])
            if kept.sum() > 0:
                return kept
        return w

    def audio(self, entry_id: str, rate_hz: int) -> np.ndarray:
        return _audio(str(self.root), self.entries[entry_id]["file"], rate_hz)

    def signal(self, entry_id: str, n: int, rate_hz: int, rng: np.random.Generator) -> np.ndarray:
        """A mono signal of n samples: a real talker's words (one speaker, one side of the split)
        with pauses, a long recording cropped at a random point, or a short one repeated."""
        e = self.entries[entry_id]
        if e["label"] == "speech" and e.get("speaker"):
            words = [i for i in self.ids("speech", e["split"]) if self.entries[i].get("speaker") == e["speaker"]]
            return self._sequence(entry_id, words, n, rate_hz, rng, WORD_GAP_S)
        x = self.audio(entry_id, rate_hz)
        if len(x) >= n:
            start = int(rng.integers(0, len(x) - n + 1))
            return x[start:start + n].astype(np.float64)
        return self._sequence(entry_id, [entry_id], n, rate_hz, rng, REPEAT_GAP_S)

    def _sequence(self, first: str, pool: list[str], n: int, rate_hz: int, rng, gap_s) -> np.ndarray:
        out = np.zeros(n)
        t, current = int(rng.uniform(0.0, 0.15) * rate_hz), first
        while t < n:
            u = self.audio(current, rate_hz)
            m = min(len(u), n - t)
            out[t:t + m] += u[:m]
            t += len(u) + int(rng.uniform(*gap_s) * rate_hz)
            current = pool[int(rng.integers(len(pool)))]
        return out


@functools.lru_cache(maxsize=512)
def _audio(root: str, file: str, rate_hz: int) -> np.ndarray:
    import soundfile as sf  # noqa: PLC0415

    x, r = sf.read(str(Path(root) / file), dtype="float32")
    return resample_to(x, r, rate_hz).astype(np.float32)


@functools.lru_cache(maxsize=4)
def open_real_sounds(root: str | None = None) -> RealSounds:
    """The kit at root (default: default_root()), loaded once per process."""
    return RealSounds(root or default_root())
