"""Accuracy split by how questions were worded (issue 20: held-out phrasings and names are
reported apart from the seen ones) and by question kind, from the keys generate.py writes; and
the direction tasks apart from the others (agent.qa.tasks.DIRECTION_TASKS)."""

from __future__ import annotations

from collections import defaultdict

from agent.core.scene import QAItem
from agent.qa.tasks import DIRECTION_TASKS

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


#: The two groups `direction_split` reports: the direction tasks and every other task.
DIRECTION_GROUPS = ("direction", "other")


def direction_split(items: list[QAItem], correct: list[bool]) -> dict[str, dict]:
    """{"direction": {"accuracy", "n"}, "other": {"accuracy", "n"}}: accuracy over the questions
    of the direction tasks (agent.qa.tasks.DIRECTION_TASKS), each question weighing the same, and
    over all other questions; the two n add up to len(items). An empty group's accuracy is None."""
    if len(items) != len(correct):
        raise ValueError(f"{len(items)} items but {len(correct)} results")
    groups: dict[str, list[bool]] = {g: [] for g in DIRECTION_GROUPS}
    for item, ok in zip(items, correct):
        groups["direction" if item.task in DIRECTION_TASKS else "other"].append(bool(ok))
    return {g: {"accuracy": sum(r) / len(r) if r else None, "n": len(r)} for g, r in groups.items()}


def direction_differences(all_metrics: dict[str, dict]) -> dict:
    """The first model's accuracy on the direction tasks minus each other model's (issue 20: the
    binaural model minus its mono twin >= 0.25), from each model's `direction` split:
    {"model": first, "minus": {other: difference or None}}."""
    first, *others = all_metrics

    def acc(name):
        return (all_metrics[name].get("direction") or {}).get("direction", {}).get("accuracy")

    a = acc(first)
    return {"model": first,
            "minus": {n: None if a is None or acc(n) is None else a - acc(n) for n in others}}
