"""Accuracy split by how questions were worded (issue 20: held-out phrasings and names are
reported apart from the seen ones) and by question kind, from the keys generate.py writes."""

from __future__ import annotations

from collections import defaultdict

from agent.core.scene import QAItem

#: Item keys a QA result is split by: held-out vs seen wording (phrasing, names, either),
#: the form (choice / yes-no / open), and whether the question asks about an absent class.
BREAKDOWN_KEYS = ("wording", "phrasing", "name_form", "form", "asks_absent")


def breakdown(items: list[QAItem], correct: list[bool]) -> dict[str, dict[str, float]]:
    """{key: {value: accuracy}} over the items that carry the key (null values are skipped);
    items from an older qa.jsonl without these keys add nothing."""
    if len(items) != len(correct):
        raise ValueError(f"{len(items)} items but {len(correct)} results")
    groups: dict[str, dict[str, list[bool]]] = {k: defaultdict(list) for k in BREAKDOWN_KEYS}
    for item, ok in zip(items, correct):
        for key in BREAKDOWN_KEYS:
            value = item.extra.get(key)
            if value is not None:
                groups[key][str(value).lower()].append(bool(ok))
    return {k: {v: sum(r) / len(r) for v, r in sorted(g.items())} for k, g in groups.items() if g}
