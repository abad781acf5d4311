"""Issue 20, "direction tasks: full minus mono >= 0.25": `bench qa` reports the tasks whose answer
depends on where a sound is apart from the others, for each model, and the first model's
direction accuracy minus each other's."""

from pathlib import Path

import pytest

from agent.core.dataset import Dataset
from agent.qa.tasks import ANSWER_TASKS_BY_NAME, DIRECTION_TASKS
from training.eval.baselines import OracleAnswerer
from training.eval.bench import direction_table, qa_table, run_qa
from training.qa.generate import generate_qa
from training.qa.report import direction_differences, direction_split
from training.synth.config import preset
from training.synth.scenes import sample_spec, spec_to_scene


@pytest.fixture(scope="module")
def ds():
    cfg = preset("bench")
    scenes = [spec_to_scene(sample_spec(cfg, 5, i), cfg) for i in range(40)]
    return Dataset(Path("in-memory"), scenes, generate_qa(scenes, seed=11, split="bench"))


class _HearsOnly(OracleAnswerer):
    """Knows the scene but answers only one kind of question; the rest it gets wrong (an empty
    answer never parses). where=True: a listener that knows where each sound is and nothing
    else; where=False: one that knows what is there and not where (a mono listener's limit)."""

    needs_audio = False

    def __init__(self, where: bool):
        self.where, self.name = where, "where-only" if where else "what-only"

    def answer(self, clip, item):
        return super().answer(clip, item) if (item.task in DIRECTION_TASKS) == self.where else ""


def test_direction_tasks_are_the_nine_where_tasks():
    assert DIRECTION_TASKS == {"l1_azimuth_deg", "l1_sector", "l1_elevation", "l2_angle_between",
                               "l2_bind_direction", "l2_relative", "l3_navigate", "l3_rotate_by", "l3_rotate_face"}
    assert DIRECTION_TASKS < set(ANSWER_TASKS_BY_NAME)
    # naming or counting the sounds needs no direction
    assert not DIRECTION_TASKS & {"l1_class_present", "l1_count", "l2_closer", "l1_distance_m"}


def test_a_listener_right_on_every_direction_question_and_wrong_elsewhere_scores_100_and_0(ds):
    where, what = run_qa(ds, _HearsOnly(True), progress=False), run_qa(ds, _HearsOnly(False), progress=False)
    n_dir = sum(q.task in DIRECTION_TASKS for q in ds.qa)
    assert 0 < n_dir < len(ds.qa)
    assert where["direction"] == {"direction": {"accuracy": 1.0, "n": n_dir},
                                  "other": {"accuracy": 0.0, "n": len(ds.qa) - n_dir}}
    assert what["direction"] == {"direction": {"accuracy": 0.0, "n": n_dir},
                                 "other": {"accuracy": 1.0, "n": len(ds.qa) - n_dir}}
    for m in (where, what):  # the two groups are the whole benchmark: counts add up, accuracy mixes back
        d, o = m["direction"]["direction"], m["direction"]["other"]
        assert d["n"] + o["n"] == m["n"] == len(ds.qa)
        assert (d["accuracy"] * d["n"] + o["accuracy"] * o["n"]) / m["n"] == pytest.approx(m["overall"])
    # the figure: the first model's direction accuracy minus each other's
    oracle = run_qa(ds, OracleAnswerer(), progress=False)
    all_metrics = {"where-only": where, "what-only": what, "oracle": oracle}
    assert direction_differences(all_metrics) == {"model": "where-only",
                                                  "minus": {"what-only": 1.0, "oracle": 0.0}}
    table = direction_table(all_metrics).splitlines()
    assert table[2].split() == ["direction", "tasks", "100.0%", f"(n={n_dir})", "0.0%", f"(n={n_dir})",
                                "100.0%", f"(n={n_dir})"]
    assert table[3].split()[:4] == ["other", "tasks", "0.0%", f"(n={len(ds.qa) - n_dir})"]
    assert table[4].split() == ["direction:", "where-only", "-", "this", "-", "+100.0", "pts", "+0.0", "pts"]
    assert "direction tasks" not in qa_table(all_metrics)  # the per-task table is unchanged


def test_direction_split_counts_every_question_once_and_an_empty_group_has_no_accuracy(ds):
    split = direction_split(ds.qa, [True] * len(ds.qa))
    assert split["direction"]["accuracy"] == split["other"]["accuracy"] == 1.0
    assert split["direction"]["n"] + split["other"]["n"] == len(ds.qa)
    only_other = [q for q in ds.qa if q.task not in DIRECTION_TASKS]
    assert direction_split(only_other, [False] * len(only_other))["direction"] == {"accuracy": None, "n": 0}
    with pytest.raises(ValueError):
        direction_split(ds.qa, [True])
