"""Checkpoints are untrusted input: loading one never runs code, and what we save loads safely."""

import os

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError
from training.models.encoder import build_encoder, load_checkpoint, save_checkpoint


class _Payload:
    """What an attacker pickles: unpickling it calls os.system."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    ran = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "binaura-encoder-v1", "config": {}, "model": {}, "x": _Payload(f"touch {ran}")}, evil)
    with pytest.raises(BinauraError, match="refusing to load") as e:
        load_checkpoint(evil)
    assert str(evil) in str(e.value)
    assert not ran.exists()  # the payload's command never ran


def test_saved_checkpoints_load_with_weights_only_and_keep_their_values(tmp_path):
    """Extras as the training recipe writes them (numpy scalars, optimizer state, RNG state)
    come back as plain data, and the weights are the model's."""
    torch.manual_seed(0)
    model = build_encoder("tiny").eval()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(4)
    save_checkpoint(tmp_path / "a.pt", model, step=3, metrics={"seld_score": np.float64(0.75), "n": np.int64(2)},
                    optimizer=opt.state_dict(), rng=rng.bit_generator.state, torch_rng=torch.get_rng_state(),
                    history=[{"step": 1, "loss": np.float32(1.5)}])
    raw = torch.load(tmp_path / "a.pt", weights_only=True)  # what load_checkpoint does
    assert raw["metrics"] == {"seld_score": 0.75, "n": 2} and raw["history"][0]["loss"] == 1.5
    loaded, ck = load_checkpoint(tmp_path / "a.pt")
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    opt2 = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    opt2.load_state_dict(ck["optimizer"])  # resumable from what was saved
    rng2 = np.random.default_rng(0)
    rng2.bit_generator.state = ck["rng"]
    assert rng2.integers(1 << 30) == np.random.default_rng(4).integers(1 << 30)
    with pytest.raises(BinauraError, match="plain data only"):
        save_checkpoint(tmp_path / "b.pt", model, extra=object())
    assert not (tmp_path / "b.pt").exists()


def test_the_shipped_checkpoint_loads_safely():
    from export.speed import DEFAULT_CHECKPOINT

    model, ck = load_checkpoint(DEFAULT_CHECKPOINT)
    assert ck["format"] == "binaura-encoder-v1" and sum(p.numel() for p in model.parameters()) > 100_000


def test_a_checkpoint_without_a_state_dict_is_named(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "binaura-encoder-v1", "config": {}, "model": [1, 2]}, bad)
    with pytest.raises(BinauraError, match="state dict of tensors"):
        load_checkpoint(bad)
