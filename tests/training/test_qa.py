from collections import Counter

import pytest

from agent.core.predictor import Clip
from agent.core.scene import OPTION_LETTERS, QAItem, Scene, SourceLabel, option_index, qa_from_json
from training.eval.baselines import ChanceAnswerer, OracleAnswerer, TextOnlyAnswerer
from training.qa.generate import generate_qa
from training.qa.score import is_correct, parse_choice, parse_turn
from training.qa.tasks import TASKS
from training.synth.config import preset
from training.synth.scenes import sample_spec, spec_to_scene


@pytest.fixture(scope="module")
def scenes():
    cfg = preset("train")
    return [spec_to_scene(sample_spec(cfg, 3, i), cfg) for i in range(120)]


def test_at_least_15_tasks_over_three_levels():
    levels = Counter(t.level for t in TASKS)
    assert len(TASKS) >= 15 and set(levels) == {"L1", "L2", "L3"} and min(levels.values()) >= 4
    assert all(len(t.phrasings) >= 2 for t in TASKS)


def test_every_task_is_generated_and_the_oracle_scores_100(scenes):
    qa = generate_qa(scenes, seed=1)
    assert {q.task for q in qa} == {t.name for t in TASKS}
    by_id = {s.id: s for s in scenes}
    oracle = OracleAnswerer()
    assert all(is_correct(q, oracle.answer(Clip(q.scene_id, None, 48000, by_id[q.scene_id]), q)) for q in qa)


def test_multiple_choice_has_four_distinct_options_and_yes_no_has_two(scenes):
    forms = Counter()
    for q in generate_qa(scenes, seed=1):
        forms[q.extra["form"]] += 1
        if q.extra["form"] == "yesno":
            assert q.options == ["yes", "no"]
        elif q.options is not None:
            assert q.extra["form"] == "choice" and len(q.options) == 4 and len(set(q.options)) == 4
        if q.options is not None:
            assert q.options[option_index(q.answer)] == q.extra["answer_text"]
        else:
            assert q.extra["form"] == "open" and q.answer == q.extra["answer_text"]
    assert min(forms.values()) > 100  # every form is common


def test_generation_is_deterministic(scenes):
    a = [q.to_json() for q in generate_qa(scenes[:10], seed=4)]
    b = [q.to_json() for q in generate_qa(scenes[:10], seed=4)]
    assert a == b


def test_sector_distractors_include_the_front_back_mirror():
    scene = Scene("s", "a.wav", 48000, 5.0, [SourceLabel("dog", 30.0, 0.0, 2.0, 0.0, 1.0)], None, "kemar-mit")
    qs = [q for seed in range(40) for q in generate_qa([scene], seed=seed)
          if q.task == "l1_sector" and q.extra["form"] == "choice" and not q.extra["asks_absent"]]
    assert len(qs) >= 10
    for q in qs:
        assert q.extra["answer_text"] == "front-left" and "back-left" in q.options


def test_rotation_answer_is_physical():
    # Dog ahead, siren on the left: turning to face the siren puts the dog on the right.
    scene = Scene("s", "a.wav", 48000, 5.0, [SourceLabel("dog", 0.0, 0.0, 2.0, 0.0, 1.0),
                                             SourceLabel("siren", 90.0, 0.0, 3.0, 0.5, 2.0)], None, "kemar-mit")
    qa = generate_qa([scene], seed=0)
    rot = [q for seed in range(30) for q in generate_qa([scene], seed=seed)
           if q.task == "l3_rotate_face" and q.extra["params"]["a"] == "siren"]
    assert rot
    for q in rot:
        claim = q.extra["params"].get("claim")
        assert q.extra["answer_text"] == ("right" if claim is None else "yes" if claim == "right" else "no")
    nav = [q for q in qa if q.task == "l3_navigate"][0]
    assert is_correct(nav, "turn left by 85 degrees") == (nav.extra["params"]["a"] == "siren")


def test_open_answer_parsing():
    assert parse_turn("right 30 deg") == -30 and parse_turn("left 45") == 45 and parse_turn("ahead") == 0


def test_text_only_is_cross_fitted(scenes):
    qa = generate_qa(scenes, seed=1)
    model = TextOnlyAnswerer().fit(qa)
    acc = sum(is_correct(q, model.answer(Clip(q.scene_id, None, 48000), q)) for q in qa) / len(qa)
    assert 0.15 < acc < 0.6  # a prior, not an oracle


def _item(options, answer="B", task="l1_class_present"):
    return QAItem("q", "s", "L1", task, "?", list(options), answer, {"answer_type": "choice"})


LABEL_OPTIONS = ["the siren", "the dog", "the bird", "the voice"]
SECTOR_OPTIONS = ["left", "front-left", "right", "back-left"]


def test_lower_case_prose_is_never_an_option_letter():
    """'a dog' is the dog (option B), not option A; a lone 'a' or 'i' names nothing."""
    item = _item(LABEL_OPTIONS, answer="B")
    got = {p: parse_choice(item, p) for p in ("a dog", "a dog, i think", "i hear a dog", "A dog barks.",
                                              "a", "i", "b", "d")}
    assert got == {"a dog": "B", "a dog, i think": "B", "i hear a dog": "B", "A dog barks.": "B",
                   "a": None, "i": None, "b": None, "d": None}
    assert is_correct(item, "a dog") and not is_correct(_item(LABEL_OPTIONS, answer="A"), "a dog")


def test_the_letters_a_language_model_writes():
    item = _item(LABEL_OPTIONS, answer="B")
    preds = ("B", "B.", "B)", "(B)", "[B]", "**B**", "B: the dog", "B. the dog", "Answer: B", "answer: B",
             "The answer is B.", "The correct option is (B).", "Option B", "I think B.",
             "The dog is behind you on the right (B).", "A siren? No: B.")
    assert {p: parse_choice(item, p) for p in preds} == dict.fromkeys(preds, "B")
    assert {p: parse_choice(item, p) for p in ("A", "A.", "A is correct", "Answer: A")} == dict.fromkeys(
        ("A", "A.", "A is correct", "Answer: A"), "A")
    # Capitals that are not standalone letters: words, abbreviations, hyphenated terms.
    assert {p: parse_choice(item, p) for p in ("Bird", "at 5 A.M.", "B-flat", "U.S.A.")} == {
        "Bird": "C", "at 5 A.M.": None, "B-flat": None, "U.S.A.": None}


def test_two_different_letters_are_ambiguous():
    item = _item(LABEL_OPTIONS, answer="A")
    preds = ("A or B", "A and B", "(A) the siren or (B) the dog", "A. Actually, C.")
    assert {p: parse_choice(item, p) for p in preds} == dict.fromkeys(preds)
    assert parse_choice(item, "B, yes: B.") == "B"  # one letter named twice is one letter


def test_a_letter_beyond_the_options_names_nothing():
    item = _item(["1", "2", "3"], answer="C", task="l1_count")
    assert [parse_choice(item, p) for p in ("C", "D", "(D)", "The answer is D.")] == ["C", None, None, None]


def test_the_longest_option_text_wins():
    """'left' is inside 'front left': an answer naming front-left names B only."""
    item = _item(SECTOR_OPTIONS, answer="B", task="l1_sector")
    preds = {"front-left": "B", "It is front left.": "B", "The siren is to your front-left.": "B",
             "left": "A", "It is to the left.": "A", "back left": "D",
             "front-left, not back-left": None, "The dog is on the left, the siren front-left": None,
             "bright": None, "upright": None}
    assert {p: parse_choice(item, p) for p in preds} == preds
    elevation = _item(["far above", "above", "at ear level", "below"], answer="A", task="l1_elevation")
    assert [parse_choice(elevation, p) for p in ("It is far above you", "above", "Above.", "above or below")] == [
        "A", "B", "B", None]


def test_exact_text_match_comes_first():
    item = _item(["no, the direction is wrong", "no", "yes", "no, that sound is not present"], answer="B")
    assert [parse_choice(item, p) for p in ("No.", "yes", "No, the direction is wrong.")] == ["B", "C", "A"]


def test_generated_items_pass_the_checker_and_the_baselines_answer_their_letters(scenes):
    qa = [q for q in generate_qa(scenes[:40], seed=2) if q.options is not None]
    chance = ChanceAnswerer(seed=0)
    for q in qa:
        item, problems = qa_from_json(q.to_json())
        assert problems == [] and item.answer == q.answer
        assert parse_choice(q, q.answer) == q.answer
        assert parse_choice(q, q.extra["answer_text"]) == q.answer
        assert chance.answer(Clip(q.scene_id, None, 48000), q) in OPTION_LETTERS[: len(q.options)]
