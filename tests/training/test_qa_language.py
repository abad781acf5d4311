"""Issue 20, "Language a person actually uses": phrasings, everyday names, their hold-out,
questions about sounds that are not there, and answer sentences that score as correct."""

import re
from collections import Counter, defaultdict

import pytest

from agent.core.dataset import write_jsonl
from agent.core.geometry import DISTANCE_BIN_NAMES, SECTOR_NAMES
from agent.core.labels import (
    EVERYDAY_NAMES,
    LABELS,
    label_of_name,
    labels_in_text,
    names_of,
    not_heard,
)
from agent.core.predictor import Clip
from agent.core.scene import QAItem, option_letter, qa_from_json
from agent.qa.sentences import say
from agent.qa.tasks import ELEVATION_NAMES, NOT_HEARD_TASK
from training.eval.baselines import ChanceAnswerer, OracleAnswerer, TextOnlyAnswerer
from training.qa.generate import QAConfig, generate_qa
from training.qa.phrasing import PHRASINGS, is_yesno, name_pools
from training.qa.report import breakdown
from training.qa.score import is_correct
from training.qa.tasks import TASKS, TASKS_BY_NAME
from training.synth.config import preset
from training.synth.scenes import sample_spec, spec_to_scene

DIRECTIONS = set(SECTOR_NAMES) | set(ELEVATION_NAMES) | set(DISTANCE_BIN_NAMES)
HELDOUT_NAMES = {label: name_pools(label)[1] for label in LABELS}


def _scenes(split: str, n: int, seed: int = 5):
    cfg = preset(split)
    return [spec_to_scene(sample_spec(cfg, seed, i), cfg) for i in range(n)]


@pytest.fixture(scope="module")
def bench():
    scenes = _scenes("bench", 160)
    return scenes, generate_qa(scenes, seed=11, split="bench")


@pytest.fixture(scope="module")
def train():
    scenes = _scenes("train", 160)
    return scenes, generate_qa(scenes, seed=11, split="train")


def _scene_of(scenes):
    by_id = {s.id: s for s in scenes}
    return lambda q: by_id[q.scene_id]


def test_every_task_has_ten_phrasings_two_held_out_and_yes_no_forms_where_it_can():
    for task in TASKS:
        group = PHRASINGS[task.name]
        assert len(group.seen) >= 8 and len(group.heldout) == 2, task.name
        assert len(set(group.all)) == len(group.all), task.name
        n_yesno = sum(map(is_yesno, group.all))
        assert (n_yesno > 0) == (task.claim is not None), task.name  # yes/no only where a claim exists
        assert n_yesno < len(group.all) / 2, task.name  # the task's own form stays the majority
    assert sum(t.claim is not None for t in TASKS) >= 12


def test_at_least_eight_distinct_phrasings_of_every_task_appear(bench):
    _, qa = bench
    ids, texts = defaultdict(set), defaultdict(set)
    for q in qa:
        ids[q.task].add(q.extra["phrasing_id"])
        texts[q.task].add(PHRASINGS[q.task].all[q.extra["phrasing_id"]])
        assert "{" not in q.question and "}" not in q.question and q.question[0].isupper()
    assert set(ids) == {t.name for t in TASKS}
    for task, seen in ids.items():
        assert len(seen) >= 8 and len(texts[task]) == len(seen), task
        # both held-out phrasings are used by the benchmark
        assert seen >= {len(PHRASINGS[task].seen), len(PHRASINGS[task].seen) + 1}, task


def test_everyday_names_resolve_to_their_class():
    assert all(len(EVERYDAY_NAMES[c]) >= 3 for c in LABELS)
    for label in LABELS:
        for name in names_of(label):
            forms = [name, name.upper(), f"  {name}?"] + ([f"that {name[4:]}"] if name.startswith("the ") else [])
            for form in forms:
                assert label_of_name(form) == label, form
    assert [label_of_name(n) for n in ("someone talking", "a bird singing", "the phone", "a honk", "the voice",
                                       "a dragon")] == ["speech", "bird", "telephone", "car_horn", "speech", None]
    assert labels_in_text("Is the barking dog left of someone talking?") == ["dog", "speech"]
    assert labels_in_text("Where's the engine running? And the fan running?") == ["engine", "fan"]


def test_generated_questions_name_the_classes_they_ask_about(bench):
    """The names put into a question read back (labels_in_text) as the params' classes."""
    _, qa = bench
    named = 0
    for q in qa:
        names = q.extra["params"]["names"]
        for slot, name in names.items():
            label = q.extra["params"][slot]
            assert label_of_name(name) == label and name.lower() in q.question.lower(), (q.question, name)
        if names:
            named += 1
            assert set(labels_in_text(q.question)) == {q.extra["params"][s] for s in names}, q.question
    assert named > len(qa) / 2


def test_train_split_never_uses_held_out_phrasings_or_names(train):
    _, qa = train
    held_templates = {t: set(PHRASINGS[t].heldout) for t in PHRASINGS}
    held_words = [re.compile(rf"\b{re.escape(n)}\b", re.I) for names in HELDOUT_NAMES.values() for n in names]
    for q in qa:
        assert q.extra["phrasing"] == "seen" and q.extra["wording"] == "seen"
        assert q.extra["name_form"] in ("seen", None)
        assert q.extra["phrasing_id"] < len(PHRASINGS[q.task].seen)
        assert PHRASINGS[q.task].all[q.extra["phrasing_id"]] not in held_templates[q.task]
        for slot, name in q.extra["params"]["names"].items():
            assert name not in HELDOUT_NAMES[q.extra["params"][slot]]
        assert not any(w.search(q.question) for w in held_words), q.question
    demo = generate_qa(_scenes("train", 20), seed=3, split="demo")
    assert {q.extra["wording"] for q in demo} == {"seen"}


def test_bench_split_mixes_seen_and_held_out_in_the_stated_proportion(bench):
    _, qa = bench
    cfg = QAConfig()
    phrasing = Counter(q.extra["phrasing"] for q in qa)
    names = Counter(q.extra["name_form"] for q in qa if q.extra["name_form"] is not None)
    assert abs(phrasing["heldout"] / len(qa) - cfg.heldout_phrasing_p) < 0.04
    assert abs(names["heldout"] / sum(names.values()) - cfg.heldout_name_p) < 0.04
    for q in qa:
        is_held = q.extra["phrasing"] == "heldout" or q.extra["name_form"] == "heldout"
        assert q.extra["wording"] == ("heldout" if is_held else "seen")
        if q.extra["name_form"] == "heldout":  # every class it names, by its held-out name
            assert all(n in HELDOUT_NAMES[q.extra["params"][s]] for s, n in q.extra["params"]["names"].items())
    for task in TASKS:  # every task has both seen and held-out wordings
        assert {q.extra["wording"] for q in qa if q.task == task.name} == {"seen", "heldout"}


def test_questions_about_absent_classes_are_answered_not_heard(bench):
    scenes, qa = bench
    scene_of = _scene_of(scenes)
    oracle = OracleAnswerer()
    absent_items = 0
    for q in qa:
        params, scene = q.extra["params"], scene_of(q)
        present = {s.label for s in scene.sources}
        targeted = TASKS_BY_NAME[q.task].target and "a" in params
        if q.extra["asks_absent"]:
            absent_items += 1
            assert targeted and params["a"] not in present and q.extra["form"] == "choice"
            assert q.extra["answer_text"] == not_heard(params["a"]) and q.extra["answer_text"] not in DIRECTIONS
            assert q.options[ord(q.answer) - ord("A")] == not_heard(params["a"])
            assert len(DIRECTIONS & set(q.options)) == 3  # directions are offered, and wrong
            assert oracle.answer(Clip(q.scene_id, None, 48000, scene), q) == not_heard(params["a"])
            assert q.extra["answer_sentence"] == not_heard(params["a"]) + "."
        elif targeted:
            assert params["a"] in present and q.extra["answer_text"] != not_heard(params["a"])
    assert absent_items > 50
    # the new task: half its items ask about an absent class, the others are controls whose
    # options offer "I don't hear ..." too, so the option's presence gives nothing away
    nh = [q for q in qa if q.task == NOT_HEARD_TASK]
    share = sum(q.extra["asks_absent"] for q in nh) / len(nh)
    assert abs(share - QAConfig().not_heard_absent_p) < 0.1
    assert all(not_heard(q.extra["params"]["a"]) in q.options for q in nh)
    assert TASKS_BY_NAME[NOT_HEARD_TASK].level == "L1"
    # the direction tasks also offer it for present sounds, and there it is wrong
    offered = [q for q in qa if q.task == "l1_sector" and q.options and any(o.startswith("I don't") for o in q.options)]
    right = sum(q.extra["asks_absent"] for q in offered)
    assert 0 < right < len(offered) * 0.6


def _wrong_open_value(q: QAItem) -> str:
    kind, v = q.extra["answer_type"], q.answer
    if kind == "deg":
        return f"{float(v.split()[0]) + (90 if 'azimuth' in q.task else 60):.0f} deg"
    if kind == "m":
        return f"{float(v.split()[0]) + 1.5:.1f} m"
    side, deg = v.split()[:2]
    return "right 90 deg" if side == "left" else "left 90 deg" if side == "right" else "left 90 deg"


@pytest.mark.parametrize("split", ["bench", "train"])
def test_answer_sentences_score_as_the_answer_they_give(split, bench, train):
    scenes, qa = bench if split == "bench" else train
    scene_of = _scene_of(scenes)
    forms = Counter()
    for q in qa:
        scene, params = scene_of(q), q.extra["params"]
        sentence, reply = q.extra["answer_sentence"], q.extra["answer_reply"]
        forms[q.extra["form"]] += 1
        assert sentence[0].isupper() and sentence.endswith(".") and len(sentence) < 120
        assert is_correct(q, sentence) and is_correct(q, reply), (q.question, q.options, reply)
        if q.options is None:
            assert reply == sentence
            wrong = say(q.task, scene, params, _wrong_open_value(q))
            assert not is_correct(q, wrong), (q.question, q.answer, wrong)
            continue
        assert reply == f"{q.answer}. {sentence}"
        for j, option in enumerate(q.options):
            if option == q.extra["answer_text"]:
                continue
            wrong = say(q.task, scene, params, option)
            assert not is_correct(q, wrong), (q.question, q.options, q.answer, wrong)
            assert not is_correct(q, f"{option_letter(j)}. {wrong}")
    assert set(forms) == {"choice", "yesno", "open"}


def test_some_sentences_read_as_a_person_would_say_them():
    from agent.core.scene import Scene, SourceLabel

    scene = Scene("s", "a.wav", 48000, 5.0, [SourceLabel("dog", -135.0, 0.0, 2.0, 0.0, 1.0),
                                             SourceLabel("footsteps", 90.0, 0.0, 1.0, 0.0, 1.0)], None, "kemar-mit")
    assert say("l1_sector", scene, {"a": "dog"}, "back-right") == \
        "The dog is to your back-right, about 2 metres away."
    assert say("l1_sector", scene, {"a": "footsteps"}, "left") == \
        "The footsteps are to your left, about 1 metre away."
    assert say("l1_not_heard", scene, {"a": "siren"}, not_heard("siren")) == "I don't hear a siren."
    assert say("l3_navigate", scene, {"a": "dog"}, "right 135 deg") == "Turn right by 135 degrees to face the dog."
    assert say("l1_sector", scene, {"a": "dog", "claim": "left"}, "no") == \
        "No, the dog is to your back-right, about 2 metres away."
    assert say("l1_class_present", scene, {"a": "dog", "claim": "the siren", "c": "siren"}, "no") == \
        "No, I don't hear a siren."


def test_yes_no_items_answer_yes_exactly_when_the_claim_is_true(bench):
    scenes, qa = bench
    scene_of = _scene_of(scenes)
    yn = [q for q in qa if q.extra["form"] == "yesno"]
    assert len(yn) > len(qa) / 6
    for q in yn:
        task, params = TASKS_BY_NAME[q.task], q.extra["params"]
        truth = task.rule(scene_of(q), params)
        assert q.options == ["yes", "no"] and q.answer == ("A" if truth == params["claim"] else "B")
        assert qa_from_json(q.to_json())[1] == []
    share_yes = sum(q.answer == "A" for q in yn) / len(yn)
    assert 0.4 < share_yes < 0.65


def test_generation_is_deterministic_to_the_byte(tmp_path):
    scenes = _scenes("bench", 30)
    for name in ("a", "b"):
        write_jsonl(tmp_path / f"{name}.jsonl", [q.to_json() for q in generate_qa(scenes, seed=9, split="bench")])
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    other = [q.to_json() for q in generate_qa(scenes, seed=10, split="bench")]
    assert [q["question"] for q in other] != [q.to_json()["question"] for q in generate_qa(scenes, 9, "bench")]
    # one scene's questions depend on that scene alone, not on which others are generated with it
    alone = [q.to_json() for q in generate_qa(scenes[7:8], seed=9, split="bench")]
    together = [q.to_json() for q in generate_qa(scenes, seed=9, split="bench") if q.scene_id == scenes[7].id]
    assert [{**q, "id": None} for q in alone] == [{**q, "id": None} for q in together]


def test_baselines_on_the_new_wordings(bench):
    scenes, qa = bench
    scene_of = _scene_of(scenes)
    oracle, chance = OracleAnswerer(), ChanceAnswerer(seed=0)
    text_only = TextOnlyAnswerer().fit(qa)
    clip = lambda q: Clip(q.scene_id, None, 48000, scene_of(q))  # noqa: E731
    assert all(is_correct(q, oracle.answer(clip(q), q)) for q in qa)
    results = {name: [is_correct(q, m.answer(clip(q), q)) for q in qa]
               for name, m in (("chance", chance), ("text-only", text_only))}
    assert 0.25 < sum(results["chance"]) / len(qa) < 0.45
    nh = [i for i, q in enumerate(qa) if q.task == NOT_HEARD_TASK]
    assert sum(results["text-only"][i] for i in nh) / len(nh) < 0.65  # "not heard" is no free answer
    split = breakdown(qa, results["chance"])
    assert set(split["wording"]) == {"seen", "heldout"} and set(split["form"]) == {"choice", "yesno", "open"}
    assert set(split["asks_absent"]) == {"true", "false"}
    assert breakdown(qa, [True] * len(qa))["wording"] == {"heldout": 1.0, "seen": 1.0}
