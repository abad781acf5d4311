"""The feature cache and the synthesis kit never delete a folder they did not make."""

import pytest

from agent.core.errors import BinauraError
from agent.core.outdir import MARKER
from training.models.config import BUILDERS
from training.recipes.encoder_data import FeatureCache, build_cache
from training.synth import kit as kit_mod
from training.synth.build import build_dataset
from training.synth.config import SynthConfig


def test_feature_cache_refuses_a_foreign_folder_and_replaces_its_own(tmp_path):
    cfg = SynthConfig(duration_s=1.0, event_duration_s=(0.5, 1.0), rt60_s=(0.2, 0.3)).validate()
    build_dataset(tmp_path / "ds", cfg, 2, seed=4, workers=1, with_qa=False, progress=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("two years of work")
    with pytest.raises(BinauraError, match="thesis.tex"):
        build_cache(tmp_path / "ds", mine, BUILDERS["tiny"](), workers=1, progress=False)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    cache = tmp_path / "cache"
    for _ in range(2):  # the second build replaces the first (it carries the marker)
        build_cache(tmp_path / "ds", cache, BUILDERS["tiny"](), workers=1, progress=False)
    assert (cache / MARKER).exists() and len(FeatureCache(cache, BUILDERS["tiny"]())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "ds", "mine"]  # no temp folder left


def test_kit_refuses_a_foreign_folder_before_any_work(tmp_path, monkeypatch):
    out = tmp_path / "home"
    out.mkdir()
    (out / "photo.jpg").write_bytes(b"\xff\xd8")
    calls = []
    monkeypatch.setattr(kit_mod, "_write_kit", lambda *a: calls.append(a))
    with pytest.raises(BinauraError, match="photo.jpg"):
        kit_mod.pack_kit(out, per_voice=1)
    assert calls == [] and [p.name for p in out.iterdir()] == ["photo.jpg"]
