"""training/recipes/distributed.py in a plain process: the recipes read the same with one process
as with several (the two-process runs: test_encoder_recipe.py, test_grpo.py)."""

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError
from training.recipes.distributed import init_distributed, rank_seed, seed_int


def test_a_plain_process_is_a_world_of_one_whose_collectives_return_their_input(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    dist = init_distributed("cpu")
    assert (dist.rank, dist.world_size, dist.is_main, dist.active) == (0, 1, True, False)
    assert dist.device == torch.device("cpu")
    assert dist.mean({"loss": 2.5, "kl": 0.1}) == {"loss": 2.5, "kl": 0.1}
    assert dist.gather({"a": 1}) == [{"a": 1}] and dist.broadcast(7) == 7
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(dist.sum(t), t) and dist.sum(t) is not t
    layer = torch.nn.Linear(2, 1)
    assert dist.wrap(layer) is layer
    layer(t).sum().backward()
    before = layer.weight.grad.clone()
    dist.average_gradients(layer.parameters())
    assert torch.equal(layer.weight.grad, before)
    with dist.main_first():
        dist.barrier()


def test_a_launch_must_name_every_rank(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(BinauraError, match="accelerate launch"):
        init_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(BinauraError, match="expected an integer"):
        init_distributed("cpu")


def test_rank_zero_draws_what_a_plain_process_draws_and_the_others_their_own():
    assert rank_seed(0, 3, 17) == [3, 17]
    plain = np.random.default_rng([3, 17]).random(4)
    assert np.array_equal(np.random.default_rng(rank_seed(0, 3, 17)).random(4), plain)
    draws = [np.random.default_rng(rank_seed(r, 3, 17)).random(4) for r in (1, 2)]
    assert not np.array_equal(draws[0], plain) and not np.array_equal(draws[0], draws[1])
    assert seed_int([3, 17, 1]) != seed_int([3, 17, 2]) and 0 <= seed_int([3, 17, 1]) < 2**63
