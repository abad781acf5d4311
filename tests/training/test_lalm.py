"""The spatial audio-language model on tiny random parts: real code paths, physical checks."""

import json

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError
from agent.core.prompt import AUDIO_CLOSE, AUDIO_OPEN, IM_END, TEMPLATE_VERSION, render
from training.models.lalm import IGNORE, LalmConfig, SpatialLALM, load_lalm, save_lalm
from training.models.llm import lalm_tiny_base, save_tiny_llm
from training.models.projector import FUSIONS, AudioProjector, ProjectorConfig

DIMS = dict(spatial_dim=8, semantic_dim=6, seld_dim=10)


def _feats(rng, t=20):
    return {"spatial": rng.standard_normal((t, 8)), "semantic": rng.standard_normal((t, 6)),
            "seld": rng.standard_normal((t, 10))}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("lalm")
    torch.manual_seed(0)
    llm, tok = lalm_tiny_base(d)
    cfg = LalmConfig(base=str(d / "tiny-llama"), projector=ProjectorConfig(n_tokens=4, d_model=16, **DIMS), lora_r=4)
    return d, SpatialLALM(llm, tok, cfg).eval()


def test_the_prompt_template_puts_the_audio_slot_in_the_user_turn():
    p = render("Where is the dog?", ["left", "right"])
    assert p.before.endswith(AUDIO_OPEN) and p.after.startswith(AUDIO_CLOSE)
    assert "A. left\nB. right" in p.after and p.after.endswith("<|im_start|>assistant\n")
    assert p.before.count("<|im_start|>") == 2 and TEMPLATE_VERSION.startswith("binaura-prompt-v")
    with pytest.raises(BinauraError, match="question is empty"):
        render("   ")
    with pytest.raises(BinauraError, match="2 to 4 options"):
        render("Which?", ["a", "b", "c", "d", "e"])


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_pools_any_clip_length_to_n_tokens(fusion):
    proj = AudioProjector(ProjectorConfig(fusion=fusion, n_tokens=5, d_model=16, out_dim=12, **DIMS)).eval()
    for t in (10, 37, 50):
        out = proj(torch.randn(2, t, 8), torch.randn(2, t, 6), torch.randn(2, t, 10))
        assert out.shape == (2, 5, 12)
    # a stream the fusion does not read changes nothing; one it reads does
    a = [torch.randn(1, 20, d) for d in (8, 6, 10)]
    base = proj(*a)
    spatial_moved = proj(a[0] + 1.0, a[1], a[2])
    semantic_moved = proj(a[0], a[1] + 1.0, a[2])
    assert torch.allclose(base, spatial_moved) == (fusion == "semantic")
    assert torch.allclose(base, semantic_moved) == (fusion == "spatial")


def test_loss_is_on_the_answer_only_and_the_audio_lands_in_its_slot(tiny):
    _, model = tiny
    rng = np.random.default_rng(0)
    ex = {**model.encode("Where is the dog?", ["left", "right"], "A. The dog is to your left."), **_feats(rng)}
    ids, labels, audio = ex["input_ids"], ex["labels"], ex["audio_mask"]
    answer = model.tokenizer(("A. The dog is to your left." + IM_END), add_special_tokens=False)["input_ids"]
    assert [x for x in labels if x != IGNORE] == answer == ids[-len(answer):]
    assert sum(audio) == 4 and all(labels[i] == IGNORE for i, a in enumerate(audio) if a)
    first_audio = audio.index(True)
    b1 = model.collate([ex])
    other = {**ex, **_feats(np.random.default_rng(1))}
    b2 = model.collate([other])
    with torch.no_grad():
        l1, l2 = model(**b1).logits, model(**b2).logits
    # causal: positions before the audio slot cannot hear it; the ones after it do
    assert torch.allclose(l1[0, :first_audio], l2[0, :first_audio], atol=1e-6)
    assert not torch.allclose(l1[0, first_audio:], l2[0, first_audio:], atol=1e-4)


def test_padding_does_not_change_an_example(tiny):
    """Right padding (training) and left padding (generation) leave each example's logits as alone."""
    _, model = tiny
    rng = np.random.default_rng(2)
    short = {**model.encode("Dog?", None, "Yes."), **_feats(rng)}
    long = {**model.encode("Where is the dog relative to me, and how far?", None, "Left, 2 m."), **_feats(rng)}
    with torch.no_grad():
        alone = model(**model.collate([short])).logits[0]
        n = alone.shape[0]
        right = model(**model.collate([short, long])).logits[0, :n]
        left = model(**model.collate([long, short], left_pad=True)).logits[1, -n:]
    assert torch.allclose(alone, right, atol=1e-4) and torch.allclose(alone, left, atol=1e-4)


def test_a_checkpoint_round_trips_and_refuses_another_base(tiny, tmp_path):
    d, model = tiny
    rng = np.random.default_rng(3)
    batch = model.collate([{**model.encode("Where?", None, "Left."), **_feats(rng)}])
    with torch.no_grad():
        for p in model.projector.parameters():
            p.add_(0.01 * torch.randn_like(p))
        before = model(**batch).logits
    save_lalm(model, tmp_path / "ck", stage="sft")
    loaded, meta = load_lalm(tmp_path / "ck")
    with torch.no_grad():
        after = loaded(**batch).logits
    assert meta["stage"] == "sft" and (tmp_path / "ck" / "weights.safetensors").stat().st_size < 200_000
    assert (after - before).abs().max() < 5e-3  # weights are stored in fp16
    other = save_tiny_llm(tmp_path / "other", seed=1)  # same shape, other weights
    with pytest.raises(BinauraError, match="another base LLM"):
        load_lalm(tmp_path / "ck", base=str(other))
    m = json.loads((tmp_path / "ck" / "lalm.json").read_text())
    m["config"]["template_version"] = "binaura-prompt-v0"
    (tmp_path / "ck" / "lalm.json").write_text(json.dumps(m))
    with pytest.raises(BinauraError, match="prompt template 'binaura-prompt-v0'"):
        load_lalm(tmp_path / "ck")
