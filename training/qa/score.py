"""Score answers to QA items: parse letters, option texts, degrees, metres, turns, labels."""

from __future__ import annotations

import re

from agent.core.geometry import azimuth_diff_deg
from agent.core.labels import DISPLAY, LABELS
from agent.core.scene import OPTION_LETTERS, QAItem, option_index, option_letter
from training.qa.tasks import DEG_TOLERANCE, M_TOLERANCE

_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?")
#: A capital option letter standing alone: not inside a word ("Bird", "A-weighted"), not part
#: of an abbreviation ("U.S.A.", "A.M."). Lower case is never a letter ("a dog", "i think").
_LETTER = re.compile(rf"(?<![\w'\-])(?<!\w\.)([{OPTION_LETTERS}])(?![\w\-])(?!'\w)(?!\.\w)")
#: A capital "A" followed by a word is the article ("A dog is on the left"), unless the word
#: is one that follows an option letter in an answer ("A or B", "A is correct").
_ARTICLE_NEXT = re.compile(r"[ \t]+([A-Za-z]{2,})")
_AFTER_LETTER = frozenset({"or", "and", "nor", "but", "is", "was", "seems", "looks", "would", "should",
                           "could", "might", "may", "because", "since", "then", "so", "vs", "versus",
                           "as", "fits", "matches"})
_ARTICLES = ("the ", "a ", "an ")


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", s.lower().replace("_", " ")).split())


def _named_letters(pred: str) -> set[str]:
    """Every option letter the prediction names ('B', '(B)', 'Answer: B', 'The answer is B.')."""
    out = set()
    for m in _LETTER.finditer(pred):
        if m.group(1) == "A":
            nxt = _ARTICLE_NEXT.match(pred, m.end())
            if nxt and nxt.group(1).lower() not in _AFTER_LETTER:
                continue
        out.add(m.group(1))
    return out


def _option_forms(option: str) -> set[str]:
    """An option's normalised text, with and without a leading article ('the dog' ~ 'a dog')."""
    text = _norm(option)
    forms = {text} if text else set()
    for article in _ARTICLES:
        if text.startswith(article) and len(text) > len(article):
            forms.add(text[len(article):])
    return forms


def _spans(text: str, form: str) -> list[tuple[int, int]]:
    """Where `form` occurs in `text` as whole words (both normalised)."""
    return [(m.start(), m.start() + len(form)) for m in re.finditer(rf"(?<!\S){re.escape(form)}(?!\S)", text)]


def parse_choice(item: QAItem, pred: str) -> str | None:
    """The option letter a prediction names, or None when it names none or several.

    An answer that names option letters (capital, standing alone) is read by them alone: one
    letter is the choice, two different letters are ambiguous. Otherwise the option texts are
    matched: an exact (normalised) match first, then the one option whose text the answer
    contains; an option whose every occurrence lies inside a longer option's occurrence
    ("left" inside "front left") does not count as named.
    """
    options = item.options or []
    letters = _named_letters(pred)
    if letters:
        if len(letters) > 1:
            return None
        letter = letters.pop()
        return letter if option_index(letter) < len(options) else None
    p = _norm(pred)
    forms = [_option_forms(opt) for opt in options]
    exact = [i for i, f in enumerate(forms) if p in f]
    if len(exact) == 1:
        return option_letter(exact[0])
    spans = {i: sorted({s for form in f for s in _spans(p, form)}) for i, f in enumerate(forms)}
    spans = {i: s for i, s in spans.items() if s}

    def covered(i: int) -> bool:
        return all(any(j != i and a <= s and e <= b and (b - a) > (e - s) for j in spans for a, b in spans[j])
                   for s, e in spans[i])

    named = [i for i in spans if not covered(i)]
    return option_letter(named[0]) if len(named) == 1 else None


def parse_number(pred: str) -> float | None:
    m = _NUM.search(pred)
    return float(m.group()) if m else None


def parse_turn(pred: str) -> float | None:
    """'left 60 deg' -> +60, 'right 30' -> -30, 'ahead' -> 0."""
    p = pred.lower()
    num = parse_number(p)
    if "left" in p and num is not None:
        return abs(num)
    if "right" in p and num is not None:
        return -abs(num)
    if "ahead" in p or "straight" in p:
        return 0.0
    return num


def parse_label(pred: str) -> str | None:
    p = _norm(pred)
    for label in LABELS:
        if p in (_norm(label), _norm(DISPLAY[label]), _norm(DISPLAY[label]).removeprefix("the ")):
            return label
    return None


def is_correct(item: QAItem, pred: str | None) -> bool:
    if pred is None:
        return False
    kind = item.extra.get("answer_type", "choice" if item.options else "label")
    if item.options:
        return parse_choice(item, pred) == item.answer
    if kind == "deg":
        v, t = parse_number(pred), parse_number(item.answer)
        if v is None:
            return False
        if item.task.endswith("angle_between"):
            return abs(v - t) <= DEG_TOLERANCE
        return abs(float(azimuth_diff_deg(v, t))) <= DEG_TOLERANCE
    if kind == "m":
        v = parse_number(pred)
        return v is not None and abs(v - parse_number(item.answer)) <= M_TOLERANCE
    if kind == "turn":
        v, t = parse_turn(pred), parse_turn(item.answer)
        return v is not None and abs(float(azimuth_diff_deg(v, t))) <= DEG_TOLERANCE
    if kind == "label":
        return parse_label(pred) == parse_label(item.answer)
    return _norm(pred) == _norm(item.answer)
