"""The perception bound: the oracle's program on what was heard scores what the hearing allows."""

import dataclasses

import pytest

from agent.core.dataset import read_dataset
from agent.core.labels import not_heard
from training.eval.baselines import OracleAnswerer, PerceptionBoundAnswerer
from training.eval.bench import run_qa
from training.synth.build import build_dataset
from training.synth.config import preset


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("pb") / "ds"
    cfg = dataclasses.replace(preset("bench"), duration_s=1.5, event_duration_s=(0.8, 1.5), rt60_s=(0.2, 0.4))
    build_dataset(out, cfg.validate(), 8, seed=3, workers=1, progress=False)
    return read_dataset(out)


def test_perfect_hearing_gives_the_oracle_and_no_hearing_says_so(ds):
    perfect = PerceptionBoundAnswerer(lambda clip: list(clip.truth.sources))
    assert run_qa(ds, perfect, progress=False)["overall"] == 1.0 == run_qa(ds, OracleAnswerer(), progress=False)["overall"]
    deaf = PerceptionBoundAnswerer(lambda clip: [])
    m = run_qa(ds, deaf, progress=False)
    assert m["breakdown"]["asks_absent"].get("true", 1.0) == 1.0  # "I don't hear a dog" is right for a deaf listener
    assert m["overall"] < 0.5
    item = next(q for q in ds.qa if q.task == "l1_sector")
    from agent.core.predictor import Clip

    clip = Clip(item.scene_id, None, 48_000, truth=ds.by_id[item.scene_id])
    assert deaf.answer(clip, item) == not_heard(item.extra["params"]["a"])
