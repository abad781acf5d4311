"""Split real recordings into train and held-out, by recording, deterministically.

The unit is never smaller than a recording: a speaker (every word one volunteer recorded)
for speech, else the recording (all takes edited from one source recording, both halves
of a key press). Per class (and per ambience kind):
- with material from 3 or more packages, one whole package is held out: the first, in a
  salted-hash order, whose share of the class's duration is within HOLD_PACKAGE_SHARE;
- otherwise (or when no package fits) units are held out by a salted hash at HOLD_SHARE,
  with at least one unit on each side whenever there are two or more.
A recording whose files landed on both sides (files of one recording under two classes)
goes to held-out entirely, so no recording is ever on both sides.

Sides are pinned (PINS_FILE, written from the kit of 2026-12-02): a unit that was split once
keeps its side when packages are added or left out, so a recording that trained a model can
never later be scored as held out. Only units the pins do not know are split by the rules
above, among themselves. (Adding six packages before the pins existed moved seven recordings
between sides: docs/benchmark.md, "The kit, checked by ear".)
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

SALT = "binaura-real-sounds-split-v1"
#: Halves of the train side ("a", "b"), for models that must be scored on recordings they never
#: heard without touching the held-out side (a namer learns on half a, is chosen on half b).
TRAIN_HALVES = ("a", "b")
HALF_SALT = "binaura-train-half-v1"
HOLD_SHARE = 0.2
HOLD_PACKAGE_SHARE = (0.05, 0.35)
TRAIN, HELD_OUT = "train", "held_out"
SPLITS = (TRAIN, HELD_OUT)
PINS_FILE = Path(__file__).with_name("split_pins.json")


def _h(*parts: str) -> float:
    digest = hashlib.sha256("|".join((SALT,) + parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def unit_of(entry: dict) -> str:
    return entry.get("speaker") or entry["recording"]


def train_half(entry: dict) -> str:
    """The entry's half of the train side ("a" or "b"): the parity of the first byte of the
    SHA-256 of its unit (a speaker or a recording), so a talker or a recording never has files
    in both halves, and a unit keeps its half whatever else the kit holds."""
    return TRAIN_HALVES[hashlib.sha256(f"{HALF_SALT}|{unit_of(entry)}".encode()).digest()[0] % 2]


def group_of(entry: dict) -> str:
    return entry["label"] if entry["kind"] == "sound" else "ambience:" + entry["ambience"]


@lru_cache(maxsize=1)
def default_pins() -> dict[str, str]:
    """{unit: side} of every unit split before (PINS_FILE)."""
    return json.loads(PINS_FILE.read_text())["sides"]


def assign_splits(entries: list[dict], pins: dict[str, str] | None = None) -> dict[str, str]:
    """Set entry["split"] for every entry (pinned units keep their side; `pins` None: the
    committed pins, {} for none); returns how each class was split (for the summary)."""
    pins = default_pins() if pins is None else pins
    by_group: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        by_group[group_of(e)].append(e)
    how: dict[str, str] = {}
    for group in sorted(by_group):
        items = by_group[group]
        new = [e for e in items if unit_of(e) not in pins]
        held_units = (_held_package(group, new, how) or _held_units(group, new, how)) if new else set()
        n_pinned = len({unit_of(e) for e in items if unit_of(e) in pins})
        if n_pinned:
            how[group] = f"{n_pinned} pinned unit(s)" + (f"; new ones: {how[group]}" if new else "")
        for e in items:
            side = pins.get(unit_of(e))
            e["split"] = side if side is not None else (HELD_OUT if unit_of(e) in held_units else TRAIN)
    sides: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        sides[e["recording"]].add(e["split"])
    for e in entries:
        if len(sides[e["recording"]]) > 1:
            e["split"] = HELD_OUT
    return how


def _held_package(group: str, items: list[dict], how: dict[str, str]) -> set[str]:
    dur: dict[str, float] = defaultdict(float)
    for e in items:
        dur[e["package"]] += e["duration_s"]
    if len(dur) < 3:
        return set()
    total = sum(dur.values())
    for pkg in sorted(dur, key=lambda p: _h(group, "package", p)):
        if HOLD_PACKAGE_SHARE[0] <= dur[pkg] / total <= HOLD_PACKAGE_SHARE[1]:
            how[group] = f"package {pkg} held out ({dur[pkg] / total:.0%} of the duration)"
            return {unit_of(e) for e in items if e["package"] == pkg}
    return set()


def _held_units(group: str, items: list[dict], how: dict[str, str]) -> set[str]:
    units = sorted({unit_of(e) for e in items}, key=lambda u: _h(group, "unit", u))
    held = {u for u in units if _h(group, "unit", u) < HOLD_SHARE}
    if len(units) >= 2 and not held:
        held = {units[0]}
    if len(units) >= 2 and len(held) == len(units):
        held.discard(units[-1])
    how[group] = f"{len(held)} of {len(units)} recordings/speakers held out"
    return held
