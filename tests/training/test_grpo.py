"""GRPO (issue 20, stage 4): rewards with real values, the objective against trl 1.16's own
GRPOTrainer._compute_loss on a text-only tiny model, and the loop end to end on a tiny LALM."""

import argparse
import json
import math

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError
from agent.core.scene import QAItem
from training.models.lalm import LalmConfig, SpatialLALM, load_lalm, save_lalm
from training.models.llm import load_base_llm, save_tiny_llm
from training.models.projector import ProjectorConfig
from training.recipes.grpo import (
    GrpoConfig,
    completion_mask,
    draw_prompts,
    group_advantages,
    grpo_loss,
    token_logps,
    train_grpo,
)
from training.recipes.grpo_rewards import (
    RewardConfig,
    correctness,
    format_reward,
    partial_credit,
    total_reward,
)


def _choice(answer="B"):
    return QAItem("q1", "s1", "L1", "l1_class_present", "Which sound do you hear?",
                  ["the phone", "the dog", "the siren"], answer, {"answer_type": "choice"})


def _open(task, kind, answer, level="L1"):
    return QAItem("q2", "s1", level, task, "?", None, answer, {"answer_type": kind})


# -- rewards ---------------------------------------------------------------------------------------
def test_correctness_reads_letters_and_not_the_article():
    item = _choice("B")
    assert correctness(item, "B. I hear the dog.", True) == 1.0
    assert correctness(item, "C. I hear the siren.", True) == 0.0
    assert correctness(item, "B. The dog, or maybe C.", True) == 0.0  # two letters: ambiguous
    assert correctness(_choice("A"), "a dog", True) == 0.0  # "a dog" is not option A ...
    assert correctness(item, "a dog", True) == 1.0  # ... it names the dog


def test_partial_credit_is_the_cosine_of_the_angular_error():
    az = _open("l1_azimuth_deg", "deg", "60 deg")
    assert partial_credit(az, "The dog is at 90 degrees.", True) == pytest.approx(math.cos(math.radians(30)))
    assert partial_credit(az, "The dog is at 90 degrees.", True) == pytest.approx(0.8660254)
    assert partial_credit(az, "The dog is at -60 degrees.", True) == 0.0  # 120 deg off
    assert partial_credit(az, "The dog is at 60 degrees.", True) == pytest.approx(1.0)
    assert partial_credit(az, "I can't tell.", True) == 0.0
    wrap = _open("l1_azimuth_deg", "deg", "170 deg")
    assert partial_credit(wrap, "It is at -160 degrees.", True) == pytest.approx(0.8660254)  # azimuths wrap
    between = _open("l2_angle_between", "deg", "102 deg", "L2")
    assert partial_credit(between, "About 72 degrees apart.", True) == pytest.approx(0.8660254)
    far = _open("l2_angle_between", "deg", "10 deg", "L2")
    assert partial_credit(far, "About 350 degrees apart.", True) == 0.0  # plain difference: 340 deg off
    turn = _open("l3_navigate", "turn", "left 84 deg", "L3")
    assert partial_credit(turn, "Turn left by 54 degrees.", True) == pytest.approx(0.8660254)
    assert partial_credit(turn, "Turn right by 36 degrees.", True) == 0.0  # 120 deg off
    assert partial_credit(_choice(), "B. I hear the dog.", True) == 0.0  # choice items: correctness only


def test_partial_credit_for_distances_decays_per_metre():
    d = _open("l1_distance_m", "m", "2.3 m")
    assert partial_credit(d, "The dog is about 3.3 metres away.", True) == pytest.approx(math.exp(-1))
    assert partial_credit(d, "The dog is about 0.3 metres away.", True) == pytest.approx(math.exp(-2))
    assert partial_credit(d, "The dog is about 3.3 metres away.", True, distance_scale_m=2.0) == pytest.approx(
        math.exp(-0.5))


def test_format_reward_on_well_formed_and_malformed_replies():
    item = _choice("B")
    assert format_reward(item, "B. I hear the dog.", True) == 1.0
    assert format_reward(item, "C. I hear the siren.", True) == 1.0  # wrong, but well formed
    assert format_reward(item, "B. I hear the dog.", False) == 0.0  # hit the token limit
    assert format_reward(item, "B", True) == 0.0  # no sentence
    assert format_reward(item, "B. the dog", True) == 0.0  # not a sentence (no end)
    assert format_reward(item, "B. I hear the dog, not C.", True) == 0.0  # a second letter
    assert format_reward(item, "D. I hear the dog.", True) == 0.0  # the item has no option D
    assert format_reward(item, "I hear the dog.", True) == 0.0  # no letter
    assert format_reward(item, "B. I hear the dog.\nB. I hear the dog.", True) == 0.0
    dist = _open("l1_distance_m", "m", "2.3 m")
    assert format_reward(dist, "The dog is about 2.5 metres away.", True) == 1.0
    assert format_reward(dist, "The dog is about 2.5 or 3 metres away.", True) == 0.0  # two numbers
    assert format_reward(dist, "The dog is close.", True) == 0.0  # no number
    assert format_reward(dist, "A. The dog is 2 metres away.", True) == 0.0  # a letter for an open question
    assert format_reward(dist, "The dog is about 2.5 metres away.", False) == 0.0


def test_total_reward_weights_the_parts():
    az = _open("l1_azimuth_deg", "deg", "60 deg")
    cfg = RewardConfig()
    assert total_reward(az, "The dog is at 70 degrees.", True, cfg) == pytest.approx(
        1.0 + 0.5 * math.cos(math.radians(10)) + 0.2)  # within 20 deg: correct, and close
    assert total_reward(az, "The dog is at 90 degrees.", False, cfg) == pytest.approx(0.5 * 0.8660254)
    assert total_reward(_choice("B"), "B. I hear the dog.", True, RewardConfig(w_format=0.0)) == 1.0
    with pytest.raises(BinauraError, match="w_partial must be >= 0"):
        RewardConfig(w_partial=-1).validate()


# -- the objective against trl -------------------------------------------------------------------------
def test_group_advantages_equal_trls_formula():
    from trl.trainer.utils import nanstd

    rewards = torch.tensor([1.0, 0.0, 0.5, 0.2, 0.7, 0.7, 0.7, 0.7, 1.7, 0.2, 0.0, 0.0])
    for g in (4, 2, 3):
        grouped = rewards.view(-1, g)
        mean = grouped.mean(1).repeat_interleave(g)
        std = nanstd(grouped, dim=1).repeat_interleave(g)
        want = (rewards - mean) / (std + 1e-4)  # trl 1.16, scale_rewards="group"
        assert torch.allclose(group_advantages(rewards, g), want, atol=1e-6)
    adv = group_advantages(rewards, 4)
    assert torch.equal(adv[4:8], torch.zeros(4))  # a group of equal rewards teaches nothing
    assert adv[0] > 0 > adv[1]
    with pytest.raises(BinauraError, match="groups of 5"):
        group_advantages(rewards, 5)


def test_completion_mask_is_trls():
    ids = torch.tensor([[5, 6, 2, 7, 2], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0]])
    assert completion_mask(ids, 2).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return save_tiny_llm(tmp_path_factory.mktemp("grpo-trl") / "tiny")


def _trl_trainer(base, tmp_path, loss_type, bias_correction_kl):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    llm, tok = load_base_llm(base)
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), use_cpu=True, bf16=False, fp16=False, report_to=[],
                      per_device_train_batch_size=4, num_generations=2, max_completion_length=6,
                      loss_type=loss_type, beta=0.04, epsilon=0.2, epsilon_high=0.28, temperature=0.7,
                      use_bias_correction_kl=bias_correction_kl, disable_dropout=True, seed=0)
    trainer = GRPOTrainer(model=llm, reward_funcs=lambda completions, **kw: [0.0] * len(completions), args=args,
                          train_dataset=Dataset.from_dict({"prompt": ["Where is the dog?"] * 4}),
                          processing_class=tok)
    trainer.model.train()  # as in training: trl's "train" branch of the normalisers
    trainer.current_gradient_accumulation_steps = 1  # what Trainer's loop sets with gradient_accumulation_steps=1
    return trainer, tok


@pytest.mark.parametrize("bias_correction_kl", [True, False])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo"])
def test_grpo_loss_equals_trls_compute_loss(tiny_base, tmp_path, loss_type, bias_correction_kl):
    trainer, tok = _trl_trainer(tiny_base, tmp_path, loss_type, bias_correction_kl)
    model = trainer.model
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    prompts = tok(["Where is the dog?", "Is there a car? Answer with the letter."], add_special_tokens=False)["input_ids"]
    p_len = max(map(len, prompts))
    prompt_ids = torch.tensor([[tok.pad_token_id] * (p_len - len(p)) + p for p in prompts for _ in range(2)])
    prompt_mask = torch.tensor([[0] * (p_len - len(p)) + [1] * len(p) for p in prompts for _ in range(2)])
    g = torch.Generator().manual_seed(0)
    completion_ids = torch.randint(3, len(tok), (4, 6), generator=g)
    completion_ids[0, 2], completion_ids[2, 4] = stop, stop  # two completions end their turn early
    mask = completion_mask(completion_ids, stop)
    completion_ids = completion_ids.masked_fill(mask == 0, tok.pad_token_id)
    advantages = group_advantages(torch.tensor([1.0, 0.2, 0.0, 0.7]), 2)
    ids = torch.cat([prompt_ids, completion_ids], 1)
    attn = torch.cat([prompt_mask, mask], 1)

    def ours():
        return token_logps(model, model.get_input_embeddings()(ids), attn, completion_ids, mask, temperature=0.7)

    with torch.no_grad():
        trl_logps = trainer._get_per_token_logps_and_entropies(model, ids, attn, 6)[0]
        mine = ours()
    assert (trl_logps - mine).abs().max() < 1e-5  # the same log-probs (logits / temperature)
    noise = 0.3 * torch.randn(mine.shape, generator=g)  # ratios beyond both clip edges
    ref = (mine - 0.5 * noise).masked_fill(mask == 0, 0.0)
    diffs = []
    for old in (None, (mine + noise).masked_fill(mask == 0, 0.0)):  # on-policy (our loop's case) and off
        inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
                  "completion_mask": mask, "advantages": advantages, "ref_per_token_logps": ref,
                  "num_items_in_batch": mask.sum()}
        if old is not None:
            inputs["old_per_token_logps"] = old
        model.zero_grad()
        want = trainer._compute_loss(model, inputs)
        want.backward()
        want_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        logps = ours()
        got = grpo_loss(logps, logps.detach() if old is None else old, ref, advantages, mask, 0.2, 0.28, 0.04,
                        loss_type, bias_correction_kl)
        got.backward()
        got, want = float(got.detach()), float(want.detach())
        assert abs(got - want) <= 1e-6, (got, want)
        for p, w in zip(model.parameters(), want_grads):
            assert torch.allclose(p.grad, w, rtol=1e-4, atol=1e-6)
        grad_diff = max(float((p.grad - w).abs().max()) for p, w in zip(model.parameters(), want_grads))
        diffs.append((abs(got - want), grad_diff, want))
    print(f"{loss_type} bias_correction_kl={bias_correction_kl}: (|loss diff|, max |grad diff|, trl loss) "
          f"on-policy {diffs[0][0]:.1e}, {diffs[0][1]:.1e}, {diffs[0][2]:.4f}; off-policy {diffs[1][0]:.1e}, "
          f"{diffs[1][1]:.1e}, {diffs[1][2]:.4f}")


# -- the loop ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from training.recipes.lalm_cache import EncoderCache, build_encoder_cache
    from training.synth.build import build_dataset
    from training.synth.config import SynthConfig

    d = tmp_path_factory.mktemp("grpo-loop")
    cfg = SynthConfig(duration_s=1.0, event_duration_s=(0.5, 1.0), rt60_s=(0.2, 0.3)).validate()
    build_dataset(d / "ds", cfg, 6, seed=4, workers=1, progress=False)
    build_encoder_cache(d / "ds", d / "cache", progress=False)
    cache = EncoderCache.open(d / "cache")
    base = save_tiny_llm(d / "tiny")
    llm, tok = load_base_llm(base)
    torch.manual_seed(0)
    proj = ProjectorConfig(n_tokens=4, d_model=16, spatial_dim=cache.meta["spatial_dim"],
                           semantic_dim=cache.meta["semantic_dim"], seld_dim=cache.meta["seld_dim"])
    model = SpatialLALM(llm, tok, LalmConfig(base=str(base), projector=proj, lora_r=4))
    with torch.no_grad():  # an "SFT" LoRA that is not the identity
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05)
    save_lalm(model, d / "init", stage="sft", lineage=["align"],
              encoder_checkpoint_sha256=cache.meta["encoder_checkpoint_sha256"])
    return d


def _reward(item, text, stopped):
    """The real reward plus a length term: a random tiny model earns no real reward, and a
    group of equal rewards would give no gradient to check."""
    return total_reward(item, text, stopped) + 0.01 * len(text)


CFG = dict(prompts_per_step=2, group_size=3, max_new_tokens=6, val_clips=1, eval_prompts=2, eval_every=2,
           lr=1e-3, threads=1)


def _lora(path):
    from safetensors.torch import load_file

    return {k: v.float() for k, v in load_file(str(path / "weights.safetensors")).items() if k.startswith("lora.")}


def test_two_grpo_steps_train_the_lora_and_resume_repeats_the_run(setup, tmp_path):
    d = setup
    model_dir = train_grpo(d / "ds", d / "cache", tmp_path / "b", GrpoConfig(steps=2, **CFG), d / "init",
                           progress=False, reward_fn=_reward)
    model, meta = load_lalm(model_dir)
    assert meta["stage"] == "grpo" and meta["lineage"] == ["align", "sft"] and model.cfg.lora_r == 4
    before, after = _lora(d / "init"), _lora(model_dir)
    assert before.keys() == after.keys()
    moved = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert moved > 1e-3  # the LoRA trained (lr 1e-3 over 2 Adam steps)
    hist = json.loads((tmp_path / "b" / "history.json").read_text())
    steps = [h for h in hist if "reward" in h]
    assert [h["step"] for h in steps] == [1, 2]
    assert steps[0]["kl"] < 1e-6 < steps[1]["kl"]  # the reference is the init: KL 0 until the first update
    assert all(h["reward_std"] > 0 for h in steps) and (tmp_path / "b" / "loss.png").stat().st_size > 1000
    assert [h["step"] for h in hist if "eval_accuracy" in h] == [0, 2]
    # resumed to 3 steps == 3 steps straight (per-step seeds, fp32 state and Adam moments restored)
    train_grpo(d / "ds", d / "cache", tmp_path / "b", GrpoConfig(steps=3, **CFG), d / "init", resume=True,
               progress=False, reward_fn=_reward)
    train_grpo(d / "ds", d / "cache", tmp_path / "a", GrpoConfig(steps=3, **CFG), d / "init", progress=False,
               reward_fn=_reward)
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "checkpoints" / "state.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "state.safetensors"))
    assert a.keys() == b.keys() and max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    with pytest.raises(BinauraError, match="another GRPO run"):
        train_grpo(d / "ds", d / "cache", tmp_path / "b", GrpoConfig(steps=4, **{**CFG, "lr": 1e-4}), d / "init",
                   resume=True, progress=False)


def test_draw_prompts_follows_the_level_weights():
    by_level = {"L1": list(range(100)), "L2": list(range(100, 200)), "L3": list(range(200, 300))}
    picks = draw_prompts(by_level, {"L1": 0.2, "L2": 0.2, "L3": 0.6}, 2000, np.random.default_rng(0))
    share_l3 = np.mean([p >= 200 for p in picks])
    assert 0.57 < share_l3 < 0.63
    assert all(p >= 200 for p in draw_prompts(by_level, {"L3": 1.0}, 50, np.random.default_rng(1)))
    with pytest.raises(BinauraError, match="no training question"):
        draw_prompts({"L1": [1]}, {"L3": 1.0}, 1, np.random.default_rng(0))


def test_config_errors_are_gathered():
    with pytest.raises(BinauraError) as e:
        GrpoConfig(group_size=1, loss_type="ppo", level_weights={"L4": 1.0}, beta=-1).validate()
    msg = str(e.value)
    assert "group_size" in msg and "loss_type" in msg and "level_weights" in msg and "beta" in msg


def test_the_command_line_runs_one_step_and_refuses_an_align_checkpoint(setup, tmp_path):
    from export.grpo_cli import add_grpo_parser

    d = setup
    parser = argparse.ArgumentParser()
    add_grpo_parser(parser.add_subparsers(dest="train"))
    args = parser.parse_args(["grpo", "--data", str(d / "ds"), "--cache", str(d / "cache"), "--init", str(d / "init"),
                              "--out", str(tmp_path / "run"), "--steps", "1", "--group-size", "2", "--prompts", "1",
                              "--max-new-tokens", "4", "--eval-prompts", "1", "--threads", "1", "--quiet",
                              "--levels", "L1=1,L3=1"])
    assert args.func(args) == 0
    _, meta = load_lalm(tmp_path / "run" / "model")
    assert meta["train_config"]["group_size"] == 2 and meta["train_config"]["level_weights"] == {"L1": 1.0, "L3": 1.0}
    model, _ = load_lalm(d / "init")
    model.cfg.lora_r = 0
    save_lalm(model, tmp_path / "align", stage="align")
    args = parser.parse_args(["grpo", "--data", str(d / "ds"), "--cache", str(d / "cache"),
                              "--init", str(tmp_path / "align"), "--out", str(tmp_path / "run2"), "--quiet"])
    with pytest.raises(BinauraError, match="without LoRA"):
        args.func(args)


def test_the_command_line_runs_unchanged_under_accelerate_launch_with_two_processes(setup, tmp_path):
    """How a GPU cluster scales GRPO out: the same command under `accelerate launch`, here two CPU
    processes (gloo). Each rank samples its own questions' groups; the gradients are averaged, so
    both ranks hold the same LoRA after every step; rank 0 alone writes the run's files.
    (tests/training/grpo_launch.py: the command line with a length term in the reward, so that the
    random tiny model's groups differ, and a per-rank log of each step.)"""
    from tests.training.launch import accelerate_launch

    d, out = setup, tmp_path / "run"
    run = accelerate_launch("tests.training.grpo_launch", [
        "train", "grpo", "--data", str(d / "ds"), "--cache", str(d / "cache"), "--init", str(d / "init"),
        "--out", str(out), "--steps", "2", "--prompts", "1", "--group-size", "3", "--max-new-tokens", "6",
        "--eval-prompts", "2", "--eval-every", "2", "--lr", "1e-3", "--threads", "1", "--quiet"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("grpo: ") == 1 and "on 2 process(es)" in run.stdout  # rank 0 reports, once
    model, meta = load_lalm(out / "model")
    assert meta["stage"] == "grpo" and meta["world_size"] == 2 and model.cfg.lora_r == 4
    before, after = _lora(d / "init"), _lora(out / "model")
    assert max(float((after[k] - before[k]).abs().max()) for k in before) > 1e-3  # the LoRA trained
    hist = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in hist if "reward" in h] == [1, 2]
    assert [h["step"] for h in hist if "eval_accuracy" in h] == [0, 2]
    assert json.loads((out / "checkpoints" / "state.json").read_text())["world_size"] == 2
    ranks = [[json.loads(line) for line in (out / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2
    for r0, r1 in zip(*ranks):
        assert r0["checksum"] == pytest.approx(r1["checksum"], rel=1e-12)  # the same weights on both ranks
        assert r0["stats"] == r1["stats"]  # the logged figures are over both ranks' samples
    assert ranks[0][0]["checksum"] != pytest.approx(ranks[0][1]["checksum"], rel=1e-9)
