"""Sound names the parser never learnt, resolved by a word table (issue 20: held-out names).

The program parser (docs/lalm.md) maps the names it was trained on to classes nearly
perfectly, but a name it never saw ("the faucet", "the ding-dong", "a tune") comes out as a
copy (`a=ding_dong`, not a class) or as a wrong class. Knowing that a faucet runs water is
world knowledge, not language: it is kept apart from the parser, in a table from words to
classes (agent/assets/sound_words.json) built from WordNet 3.0 (export/sound_words.py):
a word's senses, their synonyms, glosses and neighbours are scored against the words of the
names binaura trains on. The benchmark's held-out names were never among those seeds.

`mend` runs after the parser: a class argument stays when a word of the question names that
class (or the table knows nothing better); one that no word of the question supports (or that
is not a class at all) is replaced by the class the question's unclaimed words name, in order.
`ground` runs where the program meets what was heard: a word with two close readings ("the
rapping": a knock, or a tap of water) is settled by the one of them that was heard.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.qa.programs import TASK_OF_PROGRAM
from agent.qa.tasks import ANSWER_TASKS_BY_NAME

TABLE = Path(__file__).resolve().parents[1] / "assets" / "sound_words.json"
FORMAT = "binaura-sound-words-v1"
#: words that start a name in a question ("the faucet", "a tune", "that dog")
ARTICLES = {"the", "a", "an", "that", "some"}
#: program arguments that hold a class (claim: when its value is one)
CLASS_ARGS = ("a", "b", "label", "claim")

#: WordNet's detachment rules (morphy): suffix -> replacement, per part of speech
_RULES = {"noun": (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
                   ("ies", "y"), ("s", "")),
          "verb": (("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", ""),
                   ("s", ""))}


def base_forms(word: str, exceptions: dict[str, str]) -> list[str]:
    """The word and the base forms WordNet's rules give it ("tweeting" -> tweet, tweete; "rapping"
    -> rap through the irregular forms), most literal first, without repeats."""
    out = [word]
    if word in exceptions:
        out.append(exceptions[word])
    for rules in _RULES.values():
        for suffix, repl in rules:
            if word.endswith(suffix) and len(word) - len(suffix) >= 2:
                out.append(word[: len(word) - len(suffix)] + repl)
    return list(dict.fromkeys(out))


def words_of(text: str) -> list[str]:
    """Lower-case words of a text; hyphenated words stay whole ("ding-dong")."""
    return re.findall(r"[a-z]+(?:-[a-z]+)*", text.lower())


class SoundWords:
    """The table: word -> (class, score)."""

    def __init__(self, table: dict):
        if table.get("format") != FORMAT or not isinstance(table.get("words"), dict):
            raise BinauraError(f"a sound-word table has format {FORMAT} and a 'words' mapping")
        bad = sorted(({v[0] for v in table["words"].values()} | set(table.get("phrases", {}).values())
                      | set(table.get("seeds", {})) | {c for cs in table.get("ambiguous", {}).values() for c in cs})
                     - set(LABELS))
        if bad:
            raise BinauraError(f"sound-word table: unknown class(es) {', '.join(bad)}")
        self.words: dict[str, tuple[str, float]] = {w: (v[0], float(v[1])) for w, v in table["words"].items()}
        self.exceptions: dict[str, str] = dict(table.get("exceptions", {}))
        self.phrases: dict[str, str] = dict(table.get("phrases", {}))  # whole names of two words or more
        self.longest = max((len(p.split()) for p in self.phrases), default=1)
        self.seeds: dict[str, tuple[str, ...]] = {c: tuple(ws) for c, ws in table.get("seeds", {}).items()}
        #: the fixed words of the question templates ("how", "can", "way", "recording"): in a
        #: question they name no sound, so they support no class
        self.template_words: frozenset[str] = frozenset(table.get("template_words", ()))
        #: word -> its close readings, for a word the table cannot name alone ("rap": knocking, water)
        self.ambiguous: dict[str, tuple[str, ...]] = {w: tuple(cs) for w, cs in table.get("ambiguous", {}).items()}

    @classmethod
    def load(cls, path: str | Path = TABLE) -> SoundWords:
        try:
            return cls(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise BinauraError(f"{path}: not a readable sound-word table ({e})") from e

    def class_of(self, word: str) -> str | None:
        """The class a word names, through its base forms; None when the table has no answer."""
        pick = self.score_of(word)
        return pick[0] if pick else None

    def score_of(self, word: str) -> tuple[str, float] | None:
        """(class, the table's score) for a word, through its base forms."""
        for form in base_forms(word, self.exceptions):
            if form in self.words:
                return self.words[form]
        if "-" in word:  # "ding-dong" as a whole failed: its parts, when they agree
            parts = [self.score_of(p) for p in word.split("-")]
            found = {p[0] for p in parts if p}
            if len(found) == 1:
                return max((p for p in parts if p), key=lambda p: p[1])
        return None

    def named(self, question: str) -> list[str]:
        """Classes the question names, in order of first appearance: a name binaura trains on
        ("the car horn") as a whole first, then single words in a name's place (at most three
        words after an article: "the keys clicking", not "which way"). Of two neighbouring words
        that name classes ("the mobile phone"), the one the table is surer of counts."""
        words = words_of(question)
        found: list[tuple[int, str]] = []  # (position, class)
        taken = [False] * len(words)
        for n in range(self.longest, 1, -1):  # whole names, longest first
            for i in range(len(words) - n + 1):
                c = self.phrases.get(" ".join(words[i:i + n]))
                if c is not None and not any(taken[i:i + n]):
                    found.append((i, c))
                    taken[i:i + n] = [True] * n
        picks = [None if taken[i] or not placed else self.score_of(w)
                 for i, (w, placed) in enumerate(zip(words, in_name_place(words), strict=True))]
        for i, pick in enumerate(picks):
            if pick is None:
                continue
            neighbours = [picks[j] for j in (i - 1, i + 1) if 0 <= j < len(picks) and picks[j] is not None]
            if not any(n[1] > pick[1] for n in neighbours):
                found.append((i, pick[0]))
        out: list[str] = []
        for _, c in sorted(found):
            if c not in out:
                out.append(c)
        return out

    def readings(self, question: str) -> set[str]:
        """The classes the question's ambiguous words could mean, each word in a name's place (at
        most three words after an article, as `named` reads them) that the table cannot name
        alone: "Where is the rapping?" -> {knocking, water}."""
        out: set[str] = set()
        words = words_of(question)
        for w, placed in zip(words, in_name_place(words), strict=True):
            if not placed or w in self.template_words or self.score_of(w) is not None:
                continue
            for form in base_forms(w, self.exceptions):
                if form in self.ambiguous:
                    out.update(self.ambiguous[form])
                    break
        return out

    def ground(self, program_text: str, question: str, heard: set[str]) -> str:
        """The program with a class argument that the question neither names nor supports, that
        is no reading of its ambiguous words, and that was not heard, replaced by the one reading
        of those words that was heard and that no other argument holds ("Is the rapping on my
        right?" -> `sector a=music` becomes `sector a=knocking` when a knock was heard and no tap):
        a listener settles an ambiguous name by what it hears. Unchanged when no such reading, or
        several, were heard; a reading is never replaced (asked about a knock it did not hear, "I
        don't hear a knock" stays). heard: the classes of the sources heard."""
        words = program_text.strip().split()
        if len(words) < 2:
            return program_text
        readings = self.readings(question)
        options = readings & heard
        if not options:
            return program_text
        slots = self._class_slots(words)
        known = self.known(question)
        held = {v for _, v in slots}
        changed = False
        for i, value in slots:
            free = options - held
            if value in heard or value in known or value in readings or len(free) != 1:
                continue
            pick = free.pop()
            words[i] = f"{words[i].partition('=')[0]}={pick}"
            held.add(pick)
            changed = True
        return " ".join(words) if changed else program_text

    def _class_slots(self, words: list[str]) -> list[tuple[int, str]]:
        """(index in words, value) of a program's class arguments (a claim only when the task's
        claim is a class)."""
        label_claim = _claims_a_label(words[0])
        slots = []
        for i, w in enumerate(words[1:], start=1):
            key, sep, value = w.partition("=")
            if sep and key in CLASS_ARGS and (key != "claim" or label_claim):
                slots.append((i, value))
        return slots

    def known(self, question: str) -> set[str]:
        """The classes the question names (`named`) or supports (`supported`)."""
        return set(self.named(question)) | self.supported(question)

    def supported(self, question: str) -> set[str]:
        """The classes a word of the question is, or starts, a word of a name of ("keys" for the
        keyboard, "horn" for the car horn): the parser's class is left alone when it is one. The
        template's own words support nothing ("how" starts "howl", yet "How far is the
        tweeting?" names no dog)."""
        skip = self.template_words
        roots = {f for w in words_of(question) if w not in skip
                 for f in base_forms(w, self.exceptions) if len(f) >= 3 and f not in skip}
        return {c for c, seeds in self.seeds.items()
                if any(s.startswith(r) or r.startswith(s) for s in seeds for r in roots)}

    def mend(self, program_text: str, question: str, classes_too: bool = True) -> str:
        """The program with each unsupported class argument (no word of the question names or
        starts a name of it) replaced by a class the question names and no other argument holds
        (first unsupported <- first such class); unchanged when there is nothing to replace it
        with. classes_too=False replaces only arguments that are no class at all (a copied name:
        `a=ding_dong`), never one of the parser's classes."""
        words = program_text.strip().split()
        if len(words) < 2:
            return program_text
        named = self.named(question)
        supported = set(named) | self.supported(question)
        slots = self._class_slots(words)
        held = {v for _, v in slots if v in supported}
        free = [c for c in named if c not in held]
        changed = False
        for i, value in slots:
            if value in supported or not free or (value in LABELS and not classes_too):
                continue
            key = words[i].partition("=")[0]
            words[i] = f"{key}={free.pop(0)}"
            changed = True
        return " ".join(words) if changed else program_text


def in_name_place(words: list[str]) -> list[bool]:
    """Per word, whether it stands where a name does: at most three words after an article
    ("the keys clicking", not "which way")."""
    placed, since = [], 99  # words since the last article
    for w in words:
        since = 0 if w in ARTICLES else since + 1
        placed.append(since <= 3)
    return placed


def _claims_a_label(program_task: str) -> bool:
    """Whether the program's yes/no claim is a class (`class_present claim=dog`), not a sector,
    a distance or a count."""
    task = TASK_OF_PROGRAM.get(program_task)
    return task is not None and ANSWER_TASKS_BY_NAME[task].claim == "label"


@functools.cache
def default_words() -> SoundWords:
    return SoundWords.load(TABLE)
