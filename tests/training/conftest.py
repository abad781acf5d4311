"""Fixtures the encoder-recipe tests share."""

import pytest

from training.models.config import BUILDERS
from training.recipes.encoder_data import FeatureCache, build_cache
from training.synth.build import build_dataset
from training.synth.config import SynthConfig


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """Six 1 s scenes of the train preset (seed 4) and their tiny-encoder feature cache (read only)."""
    root = tmp_path_factory.mktemp("recipe")
    cfg = SynthConfig(duration_s=1.0, event_duration_s=(0.5, 1.0), rt60_s=(0.2, 0.3)).validate()
    build_dataset(root / "ds", cfg, 6, seed=4, workers=1, with_qa=False, progress=False)
    build_cache(root / "ds", root / "cache", BUILDERS["tiny"](), workers=1, progress=False)
    return FeatureCache(root / "cache")
