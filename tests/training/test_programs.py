"""Program-aided answers (issue 20, docs/lalm.md): every question's program, run on what was
heard, gives the benchmark's answer; a sound that was not heard is never given a direction."""

import dataclasses

import pytest

from agent.core.geometry import SECTOR_NAMES, sector_of
from agent.core.labels import LABELS, not_heard
from agent.core.scene import QAItem, SourceLabel
from agent.qa.programs import TASK_OF_PROGRAM, Program, parse_program, program_of, run_program
from agent.qa.tasks import NO
from training.qa.generate import generate_qa
from training.qa.score import is_correct
from training.qa.tasks import TASKS_BY_NAME
from training.synth.config import preset
from training.synth.scenes import sample_spec, spec_to_scene


def _qa(split: str, n: int = 60):
    cfg = preset(split)
    scenes = [spec_to_scene(sample_spec(cfg, 7, i), cfg) for i in range(n)]
    return {s.id: s for s in scenes}, generate_qa(scenes, seed=3, split=split)


@pytest.fixture(scope="module", params=["train", "bench"])
def qa(request):
    return _qa(request.param)


def test_every_question_has_a_program_that_answers_it_on_the_truth(qa):
    """The reference program of every item (both wordings, every form) round-trips through its
    text, and on the true scene it gives the item's answer, scored right by the benchmark."""
    scenes, items = qa
    assert {q.task for q in items} == set(TASKS_BY_NAME)
    for q in items:
        prog = program_of(q)
        text = prog.text()
        assert parse_program(text) == prog, text
        content, reply = run_program(prog, scenes[q.scene_id], q.options)
        assert content == q.extra["answer_text"], (q.question, text)
        assert is_correct(q, reply), (q.question, reply)


def test_programs_name_no_answer():
    """A program holds what the question says, not what the answer is: "which of these do you
    hear?" has no class argument, and a distance in a program is one the question gave."""
    scenes, items = _qa("train", 60)
    for q in items:
        prog = program_of(q)
        if q.task == "l1_class_present" and q.extra["form"] == "choice":
            assert prog.args == {}
        if "distance_m" in prog.args:
            assert f"{prog.args['distance_m']:g}" in q.question


def test_the_program_reads_what_was_heard_not_the_truth():
    """The same program on a scene heard with the dog on the other side answers that side."""
    truth = [SourceLabel("dog", 120.0, 0.0, 2.0, 0.0, 3.0), SourceLabel("bird", -30.0, 10.0, 1.0, 0.5, 3.0)]
    scenes, _ = _qa("train", 1)
    scene = dataclasses.replace(next(iter(scenes.values())), sources=truth)
    where = Program("l1_sector", {"a": "dog"})
    assert run_program(where, scene)[0] == sector_of(120.0) == "back-left"
    heard = dataclasses.replace(scene, sources=[dataclasses.replace(truth[0], azimuth_deg=-60.0), truth[1]])
    assert run_program(where, heard)[0] == "front-right"
    # among options that lack the heard sector, the nearest one is chosen
    options = ["back-left", "right", "front", "left"]
    content, reply = run_program(where, heard, options)
    assert content == "right" and reply.startswith("B. ")


def test_a_sound_not_heard_gets_no_direction():
    scenes, _ = _qa("train", 1)
    scene = dataclasses.replace(next(iter(scenes.values())), sources=[SourceLabel("bird", 30.0, 0.0, 1.0, 0.0, 2.0)])
    content, reply = run_program(Program("l1_sector", {"a": "dog"}), scene)
    assert content == not_heard("dog") and not any(s in reply for s in SECTOR_NAMES)
    # its yes/no form is a "no", and "can you hear it?" says it is not heard
    assert run_program(Program("l1_sector", {"a": "dog", "claim": "front"}), scene, ["yes", "no"])[0] == NO
    content, reply = run_program(Program("l1_class_present", {"claim": "dog"}), scene, ["yes", "no"])
    assert content == NO and reply == f"B. No, {not_heard('dog')}."
    # a relation with a sound not heard: no relation is invented
    content, _ = run_program(Program("l2_relative", {"a": "bird", "b": "dog"}), scene)
    assert content == not_heard("dog")


@pytest.mark.parametrize("text", ["", "where a=dog", "sector a=unicorn", "rotate_by a=dog turn=left",
                                  "rotate_by a=dog turn=up_90", "sector dog", "sector a=dog colour=red"])
def test_what_is_not_a_program_is_refused(text):
    assert parse_program(text) is None


def test_program_names_cover_every_task_once():
    assert len(TASK_OF_PROGRAM) == len(TASKS_BY_NAME) - 1  # l1_not_heard asks what l1_sector asks
    assert parse_program("sector a=car_horn claim=back-left") == Program(
        "l1_sector", {"a": "car_horn", "claim": "back-left"})
    assert parse_program("relative a=dog b=bird claim=to_the_left_of").args["claim"] == "to the left of"
    assert all(lab.isidentifier() for lab in LABELS)  # labels are single words in a program
    # a turn in the question's words: right is negative yaw, "around" is 180
    assert parse_program("rotate_by a=dog turn=right_135").args["yaw_deg"] == -135.0
    assert parse_program("rotate_by a=dog turn=left_45").args["yaw_deg"] == 45.0
    assert Program("l3_rotate_by", {"a": "dog", "yaw_deg": 180.0}).text() == "rotate_by a=dog turn=around"


def test_the_program_aided_answerer_with_the_right_programs_is_the_oracle(tmp_path, monkeypatch):
    """Through the answerer's own path (batching, parsing, option letters): given the reference
    programs and the truth as what was heard, every answer is right."""
    from agent.answer.programs import NOT_UNDERSTOOD
    from training.eval.program_answerer import ProgramAnswerer

    scenes, items = _qa("bench", 20)
    answerer = ProgramAnswerer.__new__(ProgramAnswerer)
    answerer.programs, answerer._lock, answerer.batch_size = {}, __import__("threading").Lock(), 4
    answerer._checked = {}  # checked decoding's memo (every reference program fits: nothing is rewritten)
    answerer.names = "off"  # the programs as written (what the sound-word table does: the next test)
    by_question = {q.question: program_of(q).text() for q in items}
    monkeypatch.setattr(answerer, "write_programs", lambda qs: [by_question[q] for q in qs], raising=False)
    for sid, scene in scenes.items():
        qs = [q for q in items if q.scene_id == sid]
        monkeypatch.setattr(answerer, "heard_scene", lambda clip, scene=scene: scene, raising=False)
        replies = answerer.answer_many(None, qs)
        assert all(is_correct(q, r) for q, r in zip(qs, replies, strict=True))
    assert answerer.reply("not a program", scene, None) == NOT_UNDERSTOOD
    item = QAItem("x", "s", "L1", "l1_sector", "Where is the dog?", None, "?", {})
    assert answerer.report(type("D", (), {"qa": [item]})())["n"] == 0  # no reference: not counted


def test_the_sound_word_table_leaves_right_programs_right():
    """Mending the reference programs of benchmark questions (held-out names included) changes
    almost none of them: a class the question names, or whose name a question word starts, is
    never replaced (agent/qa/resolve.py)."""
    from agent.qa.resolve import default_words

    words = default_words()
    _, items = _qa("bench", 200)
    changed = [q for q in items if words.mend(program_of(q).text(), q.question) != program_of(q).text()]
    assert len(items) > 3000 and len(changed) <= 0.005 * len(items)
    # and a copied name in a reference-like program is mended to the class it names
    assert words.mend("sector a=ding_dong", "Where is the ding-dong?") == "sector a=doorbell"


def test_settling_ambiguous_names_by_what_was_heard_leaves_right_programs_right():
    """With the truth as what was heard, grounding (SoundWords.ground) changes no reference
    program of benchmark questions, though many of them hold a word of two readings."""
    from agent.qa.resolve import default_words

    words = default_words()
    scenes, items = _qa("bench", 200)
    heard = {sid: {s.label for s in scene.sources} for sid, scene in scenes.items()}
    open_to_it = [q for q in items if words.readings(q.question) & heard[q.scene_id]]
    assert len(open_to_it) >= 50
    assert all(words.ground(program_of(q).text(), q.question, heard[q.scene_id]) == program_of(q).text()
               for q in items)


def test_more_names_for_training_keep_the_held_out_names_unseen():
    """AudioSet's names widen what the parser learns a class is called by, without a word that
    a held-out name holds (those stay a test of generalisation), nor a word of two classes."""
    import numpy as np

    from training.qa.augment import extra_names, name_words, renamed, same_stem
    from training.qa.phrasing import name_pools

    names = extra_names()
    held = {w for lab in LABELS for n in name_pools(lab)[1] for w in name_words(n)}
    assert sum(map(len, names.values())) >= 60 and {"the bird call", "the buzzer", "the typewriter"} <= {
        n for v in names.values() for n in v}
    for label, pool in names.items():
        for n in pool:
            assert not any(same_stem(w, h) for w in name_words(n) for h in held), n
            assert n not in name_pools(label)[0]
            others = {w for lab in LABELS if lab != label for x in (*name_pools(lab)[0], *names[lab])
                      for w in name_words(x)}
            assert not set(name_words(n)) & others, n
    _, items = _qa("train", 20)
    rng = np.random.default_rng(0)
    done = 0
    for q in items:
        r = renamed(q, names, rng)
        if r is None:
            continue
        done += 1
        assert r.question != q.question and program_of(r) == program_of(q)  # same program, other words
        assert any(n in r.question.lower() for slot_label in (q.extra["params"].get(k) for k in ("a", "b", "c", "label"))
                   if slot_label for n in names.get(slot_label, ()))
    assert done >= 50


def test_bench_writes_every_program_up_front_shortest_first_and_answers_alike():
    """`bench qa` has a program-aided model write its distinct questions' programs first, in
    batches, shortest first (least padding); the answers equal those written clip by clip."""
    from types import SimpleNamespace

    from agent.answer.programs import ProgramAnswering
    from training.eval import bench

    scenes, items = _qa("bench", 12)

    class Reference(ProgramAnswering):
        needs_audio = False

        def __init__(self):
            super().__init__(None, "reference")
            self.calls: list[list[str]] = []
            self.by_question = {q.question: program_of(q).text() for q in items}

        def write_programs(self, questions):
            self.calls.append(list(questions))
            return [self.by_question[q] for q in questions]

        def heard_scene(self, clip):
            return clip.truth  # what was heard: the truth (the oracle)

    ds = SimpleNamespace(qa=items, by_id=scenes, root="mem")
    ahead = Reference()
    got = bench.run_qa(ds, ahead, progress=False)
    distinct = sorted({q.question for q in items}, key=lambda q: (len(q), q))
    n_up_front = -(-len(distinct) // bench.PROGRAM_BATCH)
    assert [q for c in ahead.calls[:n_up_front] for q in c] == distinct
    assert all(len(c) <= bench.PROGRAM_BATCH for c in ahead.calls[:n_up_front])
    plain = Reference()
    plain.program_questions = None  # no pass up front: clip by clip only
    records: list[dict] = []
    assert bench.run_qa(ds, plain, progress=False, records=records)["overall"] == got["overall"] == 1.0
    # `bench qa --items`: one record per question, in order, with the program beside the reference
    assert [r["id"] for r in records] == [q.id for q in items]
    assert all(r["correct"] and r["model"] == "reference" for r in records)
    assert all(r["program"] == plain.programs[r["id"]] and r["reference_program"] == plain.by_question[r["question"]]
               for r in records)
    assert all("wording" in r for r in records)  # the keys the held-out split is read from


def test_the_answerer_settles_an_ambiguous_name_by_what_it_heard():
    """The parser reads "the rapping" as music; the encoder heard a knock and a voice, no music:
    with grounding on, the program that runs (and that `--json` shows) is about the knock; off,
    the music is not heard. The live agent's answerer does the same over its tracks."""
    from types import SimpleNamespace

    from agent.answer.programs import LiveProgramAnswering, ProgramAnswering, scene_of
    from export.registry import PROGRAM_OPTIONS

    heard = scene_of("s", [SourceLabel("knocking", 100.0, 0.0, 1.5, 0.0, 2.0),
                           SourceLabel("speech", -30.0, 0.0, 2.0, 0.0, 2.0)], 3.0)
    item = QAItem("q", "s", "L1", "l1_sector", "Where is the rapping?", None, "?", {})

    class Parser(ProgramAnswering):
        needs_audio = False

        def write_programs(self, questions):
            return ["sector a=music" for _ in questions]

        def heard_scene(self, clip):
            return heard

    on, off = Parser(None, "on"), Parser(None, "off")
    on.grounded, off.grounded = True, False
    assert "knock" in on.answer(None, item).lower() and on.programs["q"] == "sector a=knocking"
    assert off.answer(None, item) == "I don't hear any music." and off.programs["q"] == "sector a=music"
    assert {"grounded", "ungrounded"} <= set(PROGRAM_OPTIONS)

    class LiveParser(LiveProgramAnswering):
        def write_program(self, question):
            return "sector a=music"

    tracks = [SimpleNamespace(label=s.label, azimuth_deg=s.azimuth_deg, elevation_deg=s.elevation_deg,
                              distance_m=s.distance_m, t_start=0.0, t_last_hit=2.0, confidence=0.9)
              for s in heard.sources]
    pipeline = SimpleNamespace(heard_tracks=lambda window_s: tracks)
    live = LiveParser(None, 10.0, "live")
    live.grounded = True
    assert "knock" in "".join(live("Where is the rapping?", pipeline)).lower()
    assert live.last_program == "sector a=knocking"
