"""GRPO on the program-aided parser (docs/lalm.md, "GRPO on the programs"): a sampled program
is judged on the true scene, and the loop trains a parser without any encoder output."""

import dataclasses
import json
import types

import pytest
import torch

from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.qa.programs import Program, parse_program, program_of, right_on_truth
from training.qa.generate import generate_qa
from training.recipes.grpo_programs import ProgramRewards, program_questions
from training.recipes.grpo_rewards import RewardConfig
from training.synth.config import preset
from training.synth.scenes import sample_spec, spec_to_scene


@pytest.fixture(scope="module")
def scenes_and_items():
    cfg = preset("train")
    scenes = [spec_to_scene(sample_spec(cfg, 7, i), cfg) for i in range(40)]
    return {s.id: s for s in scenes}, generate_qa(scenes, seed=3, split="train")


def test_the_reference_program_earns_every_reward(scenes_and_items):
    scenes, items = scenes_and_items
    judge = ProgramRewards(types.SimpleNamespace(by_id=scenes), RewardConfig())
    for q in items:
        text = program_of(q).text()
        assert judge.parts(q, text, True) == {"correct": 1.0, "exact": 1.0, "format": 1.0}, (q.question, text)
        assert judge.total(q, text, True) == pytest.approx(1.0 + 0.5 + 0.2)
        # a program cut off before its end-of-turn still answers, but is no well-formed completion
        assert judge.parts(q, text, False) == {"correct": 1.0, "exact": 1.0, "format": 0.0}


def test_a_program_that_asks_about_another_sound_is_wrong_on_the_truth(scenes_and_items):
    scenes, items = scenes_and_items
    judge = ProgramRewards(types.SimpleNamespace(by_id=scenes), RewardConfig())
    checked = 0
    for q in items:
        prog = program_of(q)
        if q.task != "l1_azimuth_deg" or "a" not in prog.args:
            continue
        heard = {s.label for s in scenes[q.scene_id].sources}
        other = next(c for c in LABELS if c not in heard)  # a class the scene does not hold
        wrong = Program(prog.task, {**prog.args, "a": other}).text()
        assert judge.parts(q, wrong, True) == {"correct": 0.0, "exact": 0.0, "format": 1.0}, q.question
        checked += 1
    assert checked >= 3
    q = items[0]
    assert judge.parts(q, "hello there", True) == {"correct": 0.0, "exact": 0.0, "format": 0.0}


def test_another_program_with_the_same_answer_is_right_but_not_exact(scenes_and_items):
    """"Which is closer, the dog or the bird?" asks the same with its classes in either order."""
    scenes, items = scenes_and_items
    judge = ProgramRewards(types.SimpleNamespace(by_id=scenes), RewardConfig())
    swapped = 0
    for q in items:
        prog = program_of(q)
        if q.task != "l2_closer" or q.extra.get("form") == "yesno":
            continue
        text = Program(prog.task, {**prog.args, "a": prog.args["b"], "b": prog.args["a"]}).text()
        assert right_on_truth(text, q, scenes[q.scene_id]), (q.question, text)
        assert judge.parts(q, text, True)["exact"] == 0.0
        swapped += 1
    assert swapped >= 3


def test_the_prompts_follow_the_wordings(scenes_and_items):
    scenes, items = scenes_and_items
    ds = types.SimpleNamespace(qa=items, by_id=scenes)
    seen, reworded, every = (program_questions(ds, w) for w in ("seen", "reworded", "all"))
    assert [q.question for q in seen] == [q.question for q in items]
    assert len(reworded) > 0.9 * len(items)
    assert not {q.question for q in reworded} & {q.question for q in items}  # training-only wordings alone
    assert len(every) > len(seen) + len(reworded)  # and the renamed questions
    for q in reworded[:50]:  # a rewording asks what its item asks: the same reference program
        assert right_on_truth(program_of(q).text(), q, scenes[q.scene_id])
    with pytest.raises(BinauraError, match="wordings must be one of"):
        program_questions(ds, "held_out")


@pytest.fixture(scope="module")
def parser_setup(tmp_path_factory):
    from training.models.lalm import LalmConfig, SpatialLALM, save_lalm
    from training.models.llm import load_base_llm, save_tiny_llm
    from training.synth.build import build_dataset
    from training.synth.config import SynthConfig

    d = tmp_path_factory.mktemp("grpo-parser")
    cfg = SynthConfig(duration_s=1.0, event_duration_s=(0.5, 1.0), rt60_s=(0.2, 0.3)).validate()
    build_dataset(d / "ds", cfg, 6, seed=4, workers=1, progress=False)
    llm, tok = load_base_llm(save_tiny_llm(d / "tiny"))
    torch.manual_seed(0)
    model = SpatialLALM(llm, tok, LalmConfig(base=str(d / "tiny"), audio_tokens=False, output="program", lora_r=4))
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    save_lalm(model, d / "init", stage="parse", labels=list(LABELS))
    return d


def test_grpo_trains_a_parser_without_an_encoder_cache(parser_setup, tmp_path):
    from safetensors.torch import load_file

    from training.models.lalm import load_lalm
    from training.recipes.grpo import GrpoConfig, train_grpo

    d = parser_setup
    seen = []

    def reward(item, text, stopped):  # a random tiny model writes no program: a length term gives groups a spread
        seen.append((item.question, text))
        return 0.01 * len(text) + (1.0 if parse_program(text) else 0.0)

    cfg = GrpoConfig(steps=2, prompts_per_step=2, group_size=3, max_new_tokens=6, val_clips=1, eval_prompts=2,
                     eval_every=2, lr=1e-3, threads=1, wordings="reworded")
    out = train_grpo(d / "ds", None, tmp_path / "run", cfg, d / "init", progress=False, reward_fn=reward)
    model, meta = load_lalm(out)
    assert model.cfg.output == "program" and not model.cfg.audio_tokens
    assert meta["stage"] == "grpo" and meta["lineage"] == ["parse"] and meta["encoder_checkpoint_sha256"] is None
    assert meta["labels"] == list(LABELS) and meta["train_config"]["wordings"] == "reworded"
    lora = {k: v.float() for k, v in load_file(str(out / "weights.safetensors")).items() if k.startswith("lora.")}
    init = {k: v.float() for k, v in load_file(str(d / "init" / "weights.safetensors")).items()
            if k.startswith("lora.")}
    assert max(float((lora[k] - init[k]).abs().max()) for k in init) > 1e-3
    hist = [h for h in json.loads((tmp_path / "run" / "history.json").read_text()) if "reward" in h]
    assert {"reward_correct", "reward_exact", "reward_format"} <= set(hist[0])  # the program rewards are logged
    questions = {json.loads(line)["question"] for line in (d / "ds" / "qa.jsonl").read_text().splitlines()}
    assert len(seen) == 2 * 2 * 3 and not {q for q, _ in seen} & questions  # prompted by training-only wordings


def test_a_parser_needs_no_cache_and_a_hearing_model_does(parser_setup, tmp_path):
    from training.recipes.grpo import GrpoConfig, _open_inputs

    model, meta, cache = _open_inputs(None, parser_setup / "init")
    assert cache is None and meta["stage"] == "parse"
    assert dataclasses.replace(GrpoConfig(), wordings="all").validate().wordings == "all"
    with pytest.raises(BinauraError, match="wordings must be one of"):
        GrpoConfig(wordings="everything").validate()
