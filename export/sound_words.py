"""Build the sound-word table (agent/assets/sound_words.json) from WordNet 3.0.

    binaura export sound-words [--wordnet DIR] [--out PATH]

Seeds: the words of the names binaura trains its parser on (the QA generator's seen names,
the training-only rewordings, AudioSet's class names with no stem of a held-out name:
training/qa/augment.py), each pointing at its class. Every single-word WordNet lemma (nouns
and verbs) is scored against them: for each of its senses (weight 1/rank), the sense's own
lemmas (3), the lemmas of the senses one pointer away (hypernyms, derivations, parts: 2) and
the gloss's words (1) that are seeds add their weight to the seed's class. A word enters the
table when its best class scores at least MIN_SCORE and MIN_RATIO times the next. The seed words
themselves enter with their class, and whole names of two words or more ("car horn") as phrases.
Words of the seen question templates ("where", "hear", "way", "recording") are never keys, even
where a name holds them: in a question they name no sound. The table lists them
(`template_words`), so the runtime's mend never lets one of them support a class either.
A word whose two best classes are closer than MIN_RATIO is no key; its close readings are
listed apart (`ambiguous`: "rap" is a knock or a tap of water), for the runtime to settle by
what it hears (agent/qa/resolve.py, SoundWords.ground).

The benchmark's held-out names are never seeds (a test checks it), so how well the table
names them measures what WordNet carries, not what the benchmark told it.

WordNet comes from Debian `wordnet-base` (apt-get download, unpacked with dpkg -x, never
installed; its SHA-256 pinned below) unless --wordnet names a folder of its dict files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.qa.resolve import ARTICLES, FORMAT, TABLE, base_forms, words_of
from export.wordnet import POS, WordNet

DEB = "wordnet-base"
DEB_FILE = "wordnet-base_1%3a3.0-37_all.deb"
DEB_SHA256 = "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752"
DICT = "usr/share/wordnet"
#: lexicographer files of senses that can name a sound or what makes it (wndb(5WN) lexnames):
#: nouns act, animal, artifact, communication, event, group, object, person, phenomenon, substance;
#: verbs body, communication, contact, creation, motion, perception, weather
SOUNDISH = {4, 5, 6, 10, 11, 14, 17, 18, 19, 27, 29, 32, 35, 36, 38, 39, 43}
MIN_SCORE = 0.25
MIN_RATIO = 1.5
W_SELF, W_SENSE, W_LEMMA, W_RELATED, W_GLOSS = 10.0, 4.0, 3.0, 2.0, 1.0
#: words that name nothing by themselves
STOP = {"the", "a", "an", "of", "at", "on", "in", "to", "and", "or", "that", "some", "as", "by", "for", "with",
        "from", "is", "are", "be", "it", "its", "this", "something", "someone", "people", "person", "sound",
        "noise", "made", "make", "makes", "one", "thing", "used", "usually", "especially", "etc", "off"}
LICENSE = ("WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. THIS SOFTWARE AND DATABASE "
           "IS PROVIDED \"AS IS\" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR "
           "IMPLIED. The name of Princeton University or Princeton may not be used in advertising or publicity "
           "pertaining to distribution of the software and/or database. (Derived table; licence: WordNet 3.0.)")


def seed_names() -> dict[str, list[tuple[str, float]]]:
    """class -> (name, weight): the names binaura trains its parser on (1) and AudioSet's (0.5)."""
    from training.qa.augment import extra_names  # noqa: PLC0415
    from training.qa.phrasing import name_pools  # noqa: PLC0415
    from training.qa.rewording_data import EXTRA_NAMES  # noqa: PLC0415

    audioset = extra_names()
    return {label: [(n, 1.0) for n in (label.replace("_", " "), *name_pools(label)[0], *EXTRA_NAMES.get(label, ()))]
            + [(n, 0.5) for n in audioset.get(label, ())] for label in LABELS}


def phrases() -> dict[str, str]:
    """Whole names of two words or more, the leading article dropped ("car horn" -> car_horn,
    "bell at the door" -> doorbell), that name one class only."""
    owners: dict[str, set[str]] = defaultdict(set)
    for label, named in seed_names().items():
        for name, _ in named:
            words = words_of(name)
            if words and words[0] in ARTICLES:
                words = words[1:]
            if len(words) >= 2:
                owners[" ".join(words)].add(label)
    return {p: next(iter(c)) for p, c in sorted(owners.items()) if len(c) == 1}


def seeds(wn: WordNet) -> dict[str, dict[str, float]]:
    """Seed word (base form) -> {class: weight}: a name binaura trains on counts 1, an AudioSet
    name 0.5; a word several classes share splits its weight among them."""
    from training.qa.augment import name_words  # noqa: PLC0415

    raw: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for label, named in seed_names().items():
        for name, weight in named:
            for w in name_words(name):
                if w not in STOP and len(w) > 2:
                    base = lemma_of(w, wn)
                    raw[base][label] = max(raw[base][label], weight)
    return {w: {c: v / len(cls) for c, v in cls.items()} for w, cls in raw.items()}


def lemma_of(word: str, wn: WordNet) -> str:
    """The first base form WordNet knows (nouns first), else the word."""
    for p in POS:
        for form in base_forms(word, wn.exceptions[p]):
            if form in wn.index[p]:
                return form
    return word


def template_words() -> set[str]:
    """The fixed words of the seen question templates, of their claims ("behind me", "1 to 2 m
    away", "turn around") and of the training rewordings."""
    from training.qa.phrasing import CLAIM_WORDS, PHRASINGS  # noqa: PLC0415
    from training.qa.rewording_data import EXTRA_PHRASINGS  # noqa: PLC0415

    out = {"me", "my", "you", "your", "degrees", "metres", "meters", "turn", "around", "left", "right"}
    for table in CLAIM_WORDS.values():
        for text in table.values():
            out.update(words_of(_unslotted(text)))
    for ph in PHRASINGS.values():
        for t in ph.seen:
            out.update(words_of(_unslotted(t)))
    for ts in EXTRA_PHRASINGS.values():
        for t in ts:
            out.update(words_of(_unslotted(t)))
    return out


def _unslotted(template: str) -> str:
    return re.sub(r"\{[^}]*\}", " ", template)


def seed_senses(wn: WordNet, seed: dict[str, dict[str, float]]) -> dict[tuple[str, int], dict[str, float]]:
    """(pos, offset) of each seed word's most frequent noun and verb sense -> its classes."""
    out: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for w, classes in seed.items():
        for p in POS:
            senses = wn.index[p].get(w, ())
            if senses:
                for c, v in classes.items():
                    out[(p, senses[0])][c] = max(out[(p, senses[0])][c], v)
    return out


def specificity(word: str, wn: WordNet) -> float:
    """1 / sqrt(senses): a word of many senses ("line", "air") says little about which is meant."""
    base = lemma_of(word, wn)
    n = sum(len(wn.index[p].get(base, ())) for p in POS)
    return 1.0 / max(1.0, n) ** 0.5


def score_word(word: str, wn: WordNet, seed: dict[str, dict[str, float]],
               senses_of_seeds: dict[tuple[str, int], dict[str, float]]) -> dict[str, float]:
    """Class -> evidence for one lemma (module docstring)."""
    score: dict[str, float] = defaultdict(float)

    def add(w: str, weight: float) -> None:
        hits = seed.get(lemma_of(w, wn))
        if hits:
            for c, v in hits.items():
                score[c] += weight * v * specificity(w, wn)

    def add_sense(key: tuple[str, int], weight: float) -> None:
        for c, v in senses_of_seeds.get(key, {}).items():
            score[c] += weight * v

    for c, v in seed.get(word, {}).items():
        score[c] += W_SELF * v
    for p in POS:
        for rank, s in enumerate(wn.senses(word, p)):
            if s.lexfile not in SOUNDISH or all(pr for lem, pr in zip(s.lemmas, s.proper) if lem == word):
                continue  # a sense that names no sound source, or a proper name ("Catherine")
            sw = 1.0 / (1 + rank)
            add_sense((p, s.offset), sw * W_SENSE)
            for lem in s.lemmas:
                for w in lem.split():
                    if w != word and w not in STOP:
                        add(w, sw * W_LEMMA)
            for key in s.related:
                add_sense(key, sw * W_RELATED)
                for lem in wn.synset(*key).lemmas:
                    for w in lem.split():
                        if w != word and w not in STOP:
                            add(w, sw * W_RELATED)
            for w in set(words_of(s.gloss.split(";")[0])):  # the definition, not its examples
                if w != word and w not in STOP:
                    add(w, sw * W_GLOSS)
    return dict(score)


def build_table(wn: WordNet, progress: bool = True) -> dict:
    seed = seeds(wn)
    senses_of_seeds = seed_senses(wn, seed)
    templates = template_words()
    banned = {f for w in templates for f in (w, lemma_of(w, wn))}  # "way", "recording": never a name
    words: dict[str, list] = {}
    ambiguous: dict[str, list[str]] = {}  # word -> its close readings, surest first
    lemmas = sorted(w for w in wn.lemmas() | set(seed) if w.replace("-", "").isalpha() and w not in STOP)
    for i, w in enumerate(lemmas):
        if progress and i % 20000 == 0:
            print(f"[sound-words] {i}/{len(lemmas)}", file=sys.stderr, flush=True)
        if w in banned or len(w) < 3:
            continue
        sc = sorted(score_word(w, wn, seed, senses_of_seeds).items(), key=lambda kv: -kv[1])
        if not sc:
            continue
        best, second = sc[0][1], (sc[1][1] if len(sc) > 1 else 0.0)
        if best >= MIN_SCORE and best >= MIN_RATIO * second:
            words[w] = [sc[0][0], round(best, 2)]
        elif best >= MIN_SCORE:
            ambiguous[w] = [c for c, v in sc if MIN_RATIO * v >= best]
    exceptions = {form: base for p in POS for form, base in wn.exceptions[p].items()
                  if base in words or base in ambiguous}
    by_class: dict[str, list[str]] = defaultdict(list)
    for w, classes in seed.items():
        for c in classes:
            by_class[c].append(w)
    return {"format": FORMAT, "source": f"WordNet 3.0 (Debian {DEB_FILE}), export/sound_words.py",
            "license": LICENSE, "min_score": MIN_SCORE, "phrases": phrases(),
            "seeds": {c: sorted(by_class[c]) for c in LABELS}, "template_words": sorted(templates),
            "words": dict(sorted(words.items())), "ambiguous": dict(sorted(ambiguous.items())),
            "exceptions": dict(sorted(exceptions.items()))}


def fetch_wordnet(cache: Path) -> Path:
    """WordNet's dict folder, unpacked from the pinned Debian package into cache."""
    folder = cache / DICT
    if (folder / "data.noun").is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        r = subprocess.run(["apt-get", "download", DEB], cwd=tmp, capture_output=True, text=True)
        deb = Path(tmp) / DEB_FILE
        if r.returncode != 0 or not deb.is_file():
            raise BinauraError(f"`apt-get download {DEB}` failed: {r.stderr.strip()[-300:]} (or pass --wordnet DIR, "
                               f"a folder holding WordNet 3.0's dict files)")
        if sha256_file(deb) != DEB_SHA256:
            raise BinauraError(f"{DEB_FILE}: SHA-256 does not match the pinned {DEB_SHA256}")
        subprocess.run(["dpkg", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        os.replace(Path(tmp) / "x", cache / "unpacked")
    (folder.parent).mkdir(parents=True, exist_ok=True)
    os.replace(cache / "unpacked" / DICT, folder)
    return folder


def write_table(table: dict, out: Path) -> None:
    """JSON with one entry of each mapping per line (a rebuilt table diffs word by word); written
    to a temp name, then renamed."""
    parts = []
    for key, value in table.items():
        if isinstance(value, dict):
            body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            parts.append(f" {json.dumps(key)}: {{\n{body}\n }}")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("{\n" + ",\n".join(parts) + "\n}\n")
    os.replace(tmp, out)


def main(args) -> int:
    cache = Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura")) / "wordnet"
    folder = Path(args.wordnet) if args.wordnet else fetch_wordnet(cache)
    table = build_table(WordNet(folder), progress=not args.quiet)
    out = Path(args.out) if args.out else TABLE
    write_table(table, out)
    print(f"{len(table['words'])} words -> {out}")
    return 0
