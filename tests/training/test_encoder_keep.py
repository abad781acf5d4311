"""A fine-tune that holds the direction path still: frozen parts and the keep loss."""

import dataclasses

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError, ConfigError
from training.models.encoder import BinauralEncoder, load_checkpoint
from training.recipes.encoder import EncoderTrainConfig, train_encoder
from training.recipes.encoder_batches import Batches
from training.recipes.encoder_keep import Teacher, familiar_clips, freeze, keep_loss


@pytest.fixture(scope="module")
def init(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("keep-init")
    cfg = EncoderTrainConfig(size="tiny", steps=3, batch_size=2, eval_every=3, val_clips=2, threads=1)
    return train_encoder(cache.path, out, cfg, progress=False)


def _state(model, part):
    return {k: v.clone() for k, v in getattr(model, part).state_dict().items()}


def test_a_frozen_spatial_branch_computes_what_the_init_computed(cache, init, tmp_path):
    """Weights and BatchNorm statistics of the frozen branch and heads are bit-identical after the
    fine-tune (validation passes in between included), while the semantic side has learnt."""
    cfg = EncoderTrainConfig(size="tiny", steps=4, batch_size=2, eval_every=2, val_clips=2, threads=1, lr=1e-2,
                             freeze=("spatial", "lateral_head", "polar_head"))
    tuned = train_encoder(cache.path, tmp_path / "f", cfg, init=str(init), progress=False)
    before, _ = load_checkpoint(init)
    after, ck = load_checkpoint(tmp_path / "f" / "final.pt")
    for part in ("spatial", "lateral_head", "polar_head"):
        a, b = _state(before, part), _state(after, part)
        assert all(torch.equal(a[k], b[k]) for k in a), part
    sem_a, sem_b = _state(before, "semantic"), _state(after, "semantic")
    assert any(not torch.equal(sem_a[k], sem_b[k]) for k in sem_a if sem_a[k].is_floating_point())
    assert ck["lineage"][-1]["freeze"] == ["spatial", "lateral_head", "polar_head"]
    assert tuned.exists()


def test_keep_loss_is_zero_on_the_teacher_and_pulls_the_student_back(cache, init):
    model, _ = load_checkpoint(init)
    teacher = Teacher(load_checkpoint(init)[0])
    sp, se, acc, logd, act, _ = Batches(cache, np.arange(len(cache)), EncoderTrainConfig(batch_size=4),
                                        np.random.default_rng(0)).sample()
    assert act.any()
    held = teacher.outputs(sp, se)
    model.eval()
    assert float(keep_loss(model(sp, se, training_outputs=True), held, act)) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():  # move the student's directions: the loss sees it
        model.lateral_head.bias += 0.3
        model.polar_head.weight.mul_(1.5)
    out = model(sp, se, training_outputs=True)
    moved = keep_loss(out, held, act)
    assert float(moved) > 0.01
    # and it counts only active frames: nothing active, nothing held
    assert float(keep_loss(out, held, torch.zeros_like(act))) == 0.0
    # its gradient reaches the semantic branch through the fused heads (dense fusion)
    model.train()
    freeze(model, ("spatial",))
    keep_loss(model(sp, se, training_outputs=True), held, act).backward()
    assert all(p.grad is None for p in model.spatial.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.semantic.parameters())


def test_the_keep_loss_holds_directions_nearer_the_init(cache, init, tmp_path):
    """Same fine-tune with and without the keep loss (a high rate, to move far in a few steps):
    with it, the lateral sines stay nearer the init's on the training clips' active frames."""
    base = EncoderTrainConfig(size="tiny", steps=6, batch_size=3, eval_every=6, val_clips=0, threads=1, lr=2e-2,
                              warmup_steps=1, freeze=("spatial", "lateral_head", "polar_head", "distance_head"))
    drift = {}
    for name, w in (("free", 0.0), ("kept", 20.0)):
        train_encoder(cache.path, tmp_path / name, dataclasses.replace(base, w_keep=w), init=str(init),
                      progress=False)
        drift[name] = _lateral_drift(cache, init, tmp_path / name / "final.pt")
    assert drift["kept"] < drift["free"]


def _lateral_drift(cache, init, tuned) -> float:
    a: BinauralEncoder = load_checkpoint(init)[0]
    b: BinauralEncoder = load_checkpoint(tuned)[0]
    sp, se, _, _, act = (torch.from_numpy(x) for x in cache.batch(np.arange(len(cache))))
    with torch.no_grad():
        sa, sb = a(sp, se, training_outputs=True)[6], b(sp, se, training_outputs=True)[6]
    w = act.float()
    return float(((sa - sb).abs() * w).sum() / w.sum())


def test_bad_freeze_settings_are_refused_by_name(cache, tmp_path):
    with pytest.raises(ConfigError, match="unknown part"):
        EncoderTrainConfig(freeze=("spatial", "ears")).validate()
    with pytest.raises(ConfigError, match="nothing would train"):
        EncoderTrainConfig(freeze=("spatial", "semantic", "activity_head", "lateral_head", "polar_head",
                                   "distance_head", "class_head")).validate()
    with pytest.raises(ConfigError, match="w_keep"):
        EncoderTrainConfig(w_keep=-1.0).validate()
    with pytest.raises(BinauraError, match="--init"):
        train_encoder(cache.path, tmp_path / "x", EncoderTrainConfig(size="tiny", steps=1, w_keep=1.0, threads=1),
                      progress=False)


def test_familiar_clips_are_those_drawn_as_the_teachers_data_was():
    from agent.core.scene import Scene, SourceLabel

    def scene(hrtf="kemar-mit", real=False, **extra):
        src = SourceLabel("dog", 30.0, 0.0, 1.0, 0.0, 1.0, extra={"real": "pkg/0001"} if real else {})
        return Scene("s", "", 0, 1.0, [src], None, hrtf, extra=extra)

    mask = familiar_clips([scene(), scene("sphere"), scene("fabian"), scene(real=True),
                           scene(device={"rate_hz": 16000}), scene(real_ambience="rain"), scene(ambisonic_order=1)])
    assert mask.tolist() == [True, True, False, False, False, False, False]
    with pytest.raises(ConfigError, match="keep_on"):
        EncoderTrainConfig(keep_on="some").validate()
