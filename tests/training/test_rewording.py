"""Extra wordings for the parser's training (issue 20, training/qa/rewording.py): new templates
and names that keep the benchmark's held-out wordings unseen, render for their task, keep each
question's program, and change nothing while the switch is off."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from agent.core.labels import LABELS
from agent.qa.programs import program_of
from training.qa import rewording
from training.qa.augment import heldout_words, near_heldout
from training.qa.generate import generate_qa
from training.qa.phrasing import PHRASINGS, is_yesno, name_pools
from training.qa.rewording import EXTRA_NAMES, EXTRA_PHRASINGS, check, normalise, reworded
from training.recipes.lalm_data import build_examples
from training.synth.config import preset
from training.synth.scenes import sample_spec, spec_to_scene


@pytest.fixture(scope="module")
def items():
    """A small training split: every task, yes/no and not."""
    cfg = preset("train")
    scenes = [spec_to_scene(sample_spec(cfg, 7, i), cfg) for i in range(40)]
    return generate_qa(scenes, seed=3, split="train")


def test_enough_extra_phrasings_and_names():
    assert set(EXTRA_PHRASINGS) == set(PHRASINGS) and set(EXTRA_NAMES) == set(LABELS)
    assert all(len(set(v)) >= 10 for v in EXTRA_PHRASINGS.values())
    assert all(len(set(v)) >= 12 for v in EXTRA_NAMES.values())
    for task, group in PHRASINGS.items():  # a yes/no form wherever the task has one
        assert any(map(is_yesno, group.all)) == any(map(is_yesno, EXTRA_PHRASINGS[task])), task


def test_the_extra_wordings_pass_every_check(items):
    assert check(items) == []


def test_no_extra_phrasing_is_or_near_copies_a_held_out_one_nor_repeats_a_seen_one():
    held = [normalise(t) for g in PHRASINGS.values() for t in g.heldout]
    seen = {normalise(t) for g in PHRASINGS.values() for t in g.seen}
    for t in (t for v in EXTRA_PHRASINGS.values() for t in v):
        words = normalise(t)
        assert words not in seen, t
        for h in held:
            assert not any(words[i:i + 5] == h[j:j + 5] for i in range(len(words) - 4)
                           for j in range(len(h) - 4)), (t, h)


def test_no_extra_name_is_near_a_held_out_name_or_a_seen_one():
    held = heldout_words()
    seen = {n.lower() for lab in LABELS for n in name_pools(lab)[0]}
    for label, pool in EXTRA_NAMES.items():
        for n in pool:
            assert not near_heldout(n, held) and n.lower() not in seen, (label, n)
            assert n not in name_pools(label)[1]


def test_the_check_finds_what_it_guards_against(monkeypatch, items):
    """A near-copy of a held-out phrasing, a seen phrasing, a template that drops its class,
    a name near a held-out one and a seen name are each caught."""
    phr = {**EXTRA_PHRASINGS}
    phr["l1_sector"] = phr["l1_sector"] + ("Hey, in which direction should I look for {a}, mate?",
                                           "Where {a_is} {a}?", "Where is it?", "Where {a_is} {b}?")
    names = {**EXTRA_NAMES, "dog": EXTRA_NAMES["dog"] + ("the bark", "that dog")}
    monkeypatch.setattr(rewording, "EXTRA_PHRASINGS", phr)
    monkeypatch.setattr(rewording, "EXTRA_NAMES", names)
    found = "\n".join(check(items))
    assert "'Hey, in which direction should I look for {a}, mate?' shares" in found
    assert "'Where {a_is} {a}?' is a seen phrasing" in found
    assert "'Where is it?' says []" in found
    assert "does not render" in found  # {b}: l1_sector has no second class
    assert "'the bark' shares a stem" in found and "'that dog' shares a stem" in found


def test_every_template_renders_for_its_task(items):
    rng = np.random.default_rng(0)
    by_form = {}
    for q in items:
        by_form.setdefault((q.task, "claim" in q.extra["params"]), q)
    for task, templates in EXTRA_PHRASINGS.items():
        for t in templates:
            q = by_form[(task, is_yesno(t))]
            for p in (0.0, 1.0):
                r = reworded(q, rng, p, template=t)
                assert "{" not in r.question and r.question[0].isupper(), r.question
                assert program_of(r) == program_of(q)


def test_a_reworded_question_keeps_its_program(items):
    rng = np.random.default_rng(1)
    swapped = 0
    for q in items:
        r = reworded(q, rng)
        assert r is not None and r.question != q.question, q.question
        assert program_of(r) == program_of(q) and r.id == q.id and r.scene_id == q.scene_id
        assert r.extra["phrasing"] == "extra" and 0 <= r.extra["phrasing_id"] < len(EXTRA_PHRASINGS[q.task])
        swapped += r.extra.get("name_form") == "extra"
        if r.extra.get("name_form") == "extra":
            pools = {n for v in EXTRA_NAMES.values() for n in v}
            assert any(n in r.question.lower() for n in pools), r.question
    named = sum(bool(q.extra["params"].get("names")) for q in items)
    assert 0.3 * named < swapped < 0.9 * named  # NAME_P = 0.5 per name


def _examples(ds, **kw):
    return [json.dumps(dataclasses.asdict(e), sort_keys=True) for e in build_examples(ds, None, "parse", **kw)]


def test_the_switch_doubles_the_parse_examples_with_the_same_programs(items):
    ds = SimpleNamespace(qa=items, root="train")
    base = build_examples(ds, None, "parse")
    more = build_examples(ds, None, "parse", rewordings=True)
    assert len(more) == 2 * len(base) == 2 * len(items)
    assert more[:len(base)] == base  # the originals first, unchanged
    for orig, added in zip(base, more[len(base):], strict=True):
        assert added.target == orig.target and added.scene_id == orig.scene_id
        assert added.question != orig.question
    assert [e.question for e in more] == [e.question for e in build_examples(ds, None, "parse", rewordings=True)]
    both = build_examples(ds, None, "parse", rename=True, rewordings=True)
    renamed_only = build_examples(ds, None, "parse", rename=True)
    assert both[:len(renamed_only)] == renamed_only and len(both) == len(renamed_only) + len(items)


def test_off_by_default_the_examples_are_byte_identical(items):
    ds = SimpleNamespace(qa=items, root="train")
    assert _examples(ds) == _examples(ds, rewordings=False)
    assert _examples(ds, rename=True) == _examples(ds, rename=True, rewordings=False)
    assert _examples(ds) == [json.dumps({"row": -1, "question": q.question, "options": None,
                                         "target": program_of(q).text(), "context": None,
                                         "scene_id": q.scene_id}, sort_keys=True) for q in items]


def test_the_switch_is_a_config_field_and_a_parse_flag():
    from export.cli import build_parser
    from training.recipes.lalm import LalmTrainConfig

    assert LalmTrainConfig().rewordings is False
    args = build_parser().parse_args(["train", "parse", "--data", "d", "--out", "o", "--rewordings"])
    assert args.rewordings is True
    assert build_parser().parse_args(["train", "parse", "--data", "d", "--out", "o"]).rewordings is False
