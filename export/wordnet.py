"""A reader of the WordNet 3.0 database files (Debian `wordnet-base`: index.*, data.*, *.exc).

Only what the sound-word table needs (export/sound_words.py): a word's senses in frequency
order, each sense's lemmas, gloss and related senses (hypernyms, derivations, members), and
the irregular forms. Formats: wndb(5WN). A synset's offset is its byte offset in data.POS.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.core.errors import BinauraError

POS = ("noun", "verb")
_CODE = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
#: pointers followed one step from a sense: hypernym, derivation, instance-of, similar, member/part-of
RELATED = ("@", "@i", "+", "#m", "#p", "%p", "$", "*")


@dataclasses.dataclass(frozen=True)
class Synset:
    pos: str
    offset: int
    lexfile: int  # the lexicographer file: 6 noun.artifact, 11 noun.event, 39 verb.perception, ...
    lemmas: tuple[str, ...]  # lower case, spaces for WordNet's underscores
    proper: tuple[bool, ...]  # per lemma: written capitalised (a name: "Catherine", "Sudan")
    gloss: str
    related: tuple[tuple[str, int], ...]  # (pos, offset) one pointer away, in RELATED


class WordNet:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        missing = [f"{k}.{p}" for p in POS for k in ("index", "data") if not (self.folder / f"{k}.{p}").is_file()]
        if missing:
            raise BinauraError(f"{self.folder}: not a WordNet 3.0 database folder (missing {', '.join(missing)}; "
                               f"expected the dict files of Debian wordnet-base, usr/share/wordnet)")
        self._data = {p: (self.folder / f"data.{p}").read_bytes() for p in POS}
        self.index: dict[str, dict[str, tuple[int, ...]]] = {p: self._read_index(p) for p in POS}
        self.exceptions: dict[str, dict[str, str]] = {p: self._read_exc(p) for p in POS}
        self._cache: dict[tuple[str, int], Synset] = {}

    def _read_index(self, pos: str) -> dict[str, tuple[int, ...]]:
        out = {}
        for line in (self.folder / f"index.{pos}").read_text(encoding="latin-1").splitlines():
            if not line or line.startswith(" "):  # the licence header lines start with a space
                continue
            f = line.split()
            n_senses, n_ptr = int(f[2]), int(f[3])
            offsets = f[4 + n_ptr + 2:]
            if len(offsets) != n_senses:
                raise BinauraError(f"index.{pos}: malformed line for {f[0]!r}")
            out[f[0].replace("_", " ")] = tuple(int(o) for o in offsets)
        return out

    def _read_exc(self, pos: str) -> dict[str, str]:
        path = self.folder / f"{pos}.exc"
        out = {}
        if path.is_file():
            for line in path.read_text(encoding="latin-1").splitlines():
                f = line.split()
                if len(f) >= 2:
                    out.setdefault(f[0].replace("_", " "), f[1].replace("_", " "))
        return out

    def synset(self, pos: str, offset: int) -> Synset:
        key = (pos, offset)
        if key not in self._cache:
            data = self._data[pos]
            end = data.index(b"\n", offset)
            line = data[offset:end].decode("latin-1")
            head, _, gloss = line.partition(" | ")
            f = head.split()
            if int(f[0]) != offset:
                raise BinauraError(f"data.{pos}: no synset at byte {offset}")
            n_words = int(f[3], 16)
            written = [f[4 + 2 * i].split("(")[0] for i in range(n_words)]
            lemmas = tuple(w.lower().replace("_", " ") for w in written)
            proper = tuple(w[:1].isupper() for w in written)
            i = 4 + 2 * n_words
            n_ptr = int(f[i])
            related = []
            for j in range(n_ptr):
                sym, off, pcode = f[i + 1 + 4 * j], int(f[i + 2 + 4 * j]), f[i + 3 + 4 * j]
                if sym in RELATED and _CODE.get(pcode) in POS:
                    related.append((_CODE[pcode], off))
            self._cache[key] = Synset(pos, offset, int(f[1]), lemmas, proper, gloss.strip(), tuple(related))
        return self._cache[key]

    def senses(self, lemma: str, pos: str) -> list[Synset]:
        return [self.synset(pos, o) for o in self.index[pos].get(lemma, ())]

    def lemmas(self) -> set[str]:
        return {w for p in POS for w in self.index[p]}
