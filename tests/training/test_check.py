"""Checked decoding (issue 20, docs/lalm.md): a program that does not fit its question is found
from the question and its options alone, and written again with its task fixed; a program that
fits is never touched."""

import pytest

from agent.answer.programs import checked_program
from agent.qa.check import ARGS, fitting_tasks, form_of, options_kind, problems, trimmed
from agent.qa.programs import PROGRAM_OF_TASK, program_of
from training.qa.generate import generate_qa
from training.synth.config import preset
from training.synth.scenes import sample_spec, spec_to_scene

ELEVATIONS = ["above", "below", "at ear level", "far above"]


@pytest.mark.parametrize("split", ["train", "bench"])
def test_every_reference_program_fits_its_question(split):
    """Seen and held-out wordings, every task and form: the program that asks what the item asks
    has no problem, so checked decoding never replaces a right program (also run over the
    benchmark, the selection set and the training set: 50,833 programs, none flagged)."""
    cfg = preset(split)
    scenes = [spec_to_scene(sample_spec(cfg, 11, i), cfg) for i in range(40)]
    items = generate_qa(scenes, seed=5, split=split)
    assert len({q.task for q in items}) == 21
    flagged = [(q.question, program_of(q).text(), problems(program_of(q).text(), q.question, q.options))
               for q in items if "params" in q.extra and problems(program_of(q).text(), q.question, q.options)]
    assert flagged == []


def test_programs_that_do_not_fit_are_named():
    turn_q = "What turn gets me looking at the dog?"
    assert problems("navigate a=dog", turn_q, None) == []
    assert any("sector=back" in p for p in problems("bind_direction sector=back", turn_q, None))  # said nowhere
    assert problems("bind_direction sector=back", "What is behind me?", None) == []
    up_q = "Should I look up or down to find the smoke alarm?"
    assert problems("elevation a=alarm", up_q, ELEVATIONS) == []
    assert any("does not answer options" in p for p in problems("rotate_face a=alarm b=dog", up_q, ELEVATIONS))
    closer_q = "Which is a shorter distance from me, the dog or the bird?"
    assert any("takes ['a']" in p for p in problems("distance_bin a=dog b=bird", closer_q, ["the dog", "the bird"]))
    assert problems("closer a=dog b=bird", closer_q, ["the dog", "the bird", "about equally far"]) == []
    assert any("does not answer" in p for p in problems("distance_bin a=dog", closer_q, ["the dog", "the bird"]))
    assert problems("count claim", "If I can only check on one thing, what should it be?", None) == ["not a program"]
    assert any("needs a claim" in p for p in problems("sector a=dog", "Is the dog behind me?", ["yes", "no"]))
    assert problems("sector a=dog claim=back", "Is the dog behind me?", ["yes", "no"]) == []
    assert any("claim=left" in p for p in problems("sector a=dog claim=left", "Is the dog behind me?", ["yes", "no"]))
    turn = "If I turn 90 degrees to my left, where is the dog?"
    assert problems("rotate_by a=dog turn=left_90", turn, None) == []
    assert any("turn" in p for p in problems("rotate_by a=dog turn=right_90", turn, None))  # the wrong side
    assert any("turn" in p for p in problems("rotate_by a=dog turn=left_45", turn, None))  # a number not said
    assert problems("rotate_by a=dog turn=around", "If I turn around, where is the dog?", None) == []
    assert any("distance" in p for p in problems("bind_distance distance=2.5", "What is 1.5 m away?", None))


def test_forms_and_the_tasks_that_fit_them():
    assert form_of(None) == "open" and form_of(["yes", "no"]) == "yesno" and form_of(ELEVATIONS) == "choice"
    assert options_kind(ELEVATIONS) == "elevation"
    assert options_kind(["front", "back", "I don't hear a dog"]) == "sector"  # not-heard left out
    assert options_kind(["the dog", "about equally far"]) == "label" and options_kind(["dog", "front"]) is None
    assert fitting_tasks(ELEVATIONS) == ("l1_elevation",)
    assert set(fitting_tasks(["front", "left"])) == {"l1_sector", "l3_rotate_face", "l3_rotate_by"}
    assert "l3_navigate" not in fitting_tasks(["yes", "no"]) and "l1_sector" in fitting_tasks(["yes", "no"])
    assert fitting_tasks(None) == tuple(ARGS)
    assert trimmed("navigate a=dog b=music") == "navigate a=dog" and trimmed("navigate a=dog") is None


class Writer:
    """A fake model: fixed (text, log-prob) per task; records what it was asked."""

    def __init__(self, by_task):
        self.by_task, self.asked = by_task, []

    def __call__(self, question, tasks):
        self.asked.append(tasks)
        return [self.by_task.get(t, (f"{t} a=nothing", -99.0)) for t in tasks]


def test_checked_decoding_keeps_what_fits_and_rewrites_what_does_not():
    q = "What turn gets me looking at the dog?"
    never = Writer({})
    assert checked_program("navigate a=dog", q, None, "off", never) == "navigate a=dog" and never.asked == []
    # the parser's own task less what it does not take comes first, without a rewrite
    assert checked_program("navigate a=dog b=music", q, None, "off", never) == "navigate a=dog" and never.asked == []
    w = Writer({"navigate": ("navigate a=dog", -3.0), "sector": ("sector a=dog", -1.0),
                "bind_direction": ("bind_direction sector=back", -0.1)})
    # sector fits and is likelier than navigate; bind_direction is never asked again (its first program failed)
    assert checked_program("bind_direction sector=back", q, None, "off", w) == "sector a=dog"
    assert "bind_direction" not in w.asked[0] and set(w.asked[0]) == {PROGRAM_OF_TASK[t] for t in ARGS} - {"bind_direction"}
    # a rewrite that invents a class the question never names ranks below one that does not
    w = Writer({"priority": ("priority", -5.0), "remove": ("remove a=glass_breaking", -1.0)})
    assert checked_program("count claim", "If I can only check on one thing, what should it be?", None, "off", w) == "priority"
    # only the tasks the options allow are asked; nothing fits -> the first program stays
    w = Writer({})
    assert checked_program("rotate_face a=alarm b=dog", "Up or down to the alarm?", ELEVATIONS, "off", w) \
        == "rotate_face a=alarm b=dog"
    assert w.asked == [("elevation",)]
    assert checked_program("bind_direction sector=back", q, None, "off", None) == "bind_direction sector=back"
    # with a fallback (ask, the live agent), a text that is no program stays for the tracks' answerer
    w = Writer({"priority": ("priority", -1.0)})
    assert checked_program("count claim", "What should I check first?", None, "off", w, unparsed=False) == "count claim"
    assert w.asked == []
