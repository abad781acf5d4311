"""Scene synthesis: determinism, slices, atomicity, config validation."""

import numpy as np
import pytest

from agent.core.dataset import read_dataset
from agent.core.errors import ConfigError
from agent.core.geometry import great_circle_deg
from training.synth import build as build_mod
from training.synth.build import build_dataset
from training.synth.config import SynthConfig, preset
from training.synth.scenes import render_scene, sample_spec


def small(cfg: SynthConfig) -> SynthConfig:
    cfg.duration_s = 1.0
    cfg.event_duration_s = (0.4, 1.0)
    cfg.rt60_s = (0.1, 0.3)
    cfg.sample_rate_hz = 32_000
    return cfg.validate()


def test_scene_is_deterministic_from_seed_and_index():
    cfg = small(preset("train"))
    a1, s1 = render_scene(sample_spec(cfg, 5, 3), cfg)
    a2, s2 = render_scene(sample_spec(cfg, 5, 3), cfg)
    np.testing.assert_array_equal(a1, a2)
    assert s1.to_json() == s2.to_json()
    a3, _ = render_scene(sample_spec(cfg, 5, 4), cfg)
    assert not np.allclose(a1[:, :1000], a3[:, :1000])


def test_sources_are_distinct_and_apart():
    cfg = preset("train")
    for i in range(40):
        spec = sample_spec(cfg, 0, i)
        labels = [s.label for s in spec.sources]
        assert len(set(labels)) == len(labels)
        assert 1 <= len(labels) <= 3
        for a in spec.sources:
            assert cfg.distance_m[0] <= a.distance_m <= cfg.distance_m[1]
            assert 0 <= a.onset_s < a.offset_s <= cfg.duration_s
            for b in spec.sources:
                if a is not b:
                    assert great_circle_deg(a.azimuth_deg, a.elevation_deg, b.azimuth_deg,
                                            b.elevation_deg) >= cfg.min_separation_deg - 0.05


def test_slice_renders_alone_identically(tmp_path):
    cfg = small(preset("train"))
    build_dataset(tmp_path / "full", cfg, 3, seed=9, workers=1, progress=False)
    build_dataset(tmp_path / "slice", cfg, 1, seed=9, start=2, workers=1, progress=False)
    full, part = read_dataset(tmp_path / "full"), read_dataset(tmp_path / "slice")
    assert part.scenes[0].to_json() == full.scenes[2].to_json()
    np.testing.assert_array_equal(full.load_audio(full.scenes[2])[0], part.load_audio(part.scenes[0])[0])
    assert len(full.qa) > 10


def test_interrupted_run_leaves_no_index(tmp_path, monkeypatch):
    cfg = small(preset("train"))
    calls = {"n": 0}
    real = build_mod._render_one

    def flaky(job):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(build_mod, "_render_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(tmp_path, cfg, 3, seed=1, workers=1, progress=False)
    assert not (tmp_path / "scenes.jsonl").exists()
    assert not list(tmp_path.rglob("*.part"))


def test_config_errors_are_gathered():
    with pytest.raises(ConfigError) as e:
        SynthConfig(min_sources=-1, classes=("dog", "unicorn"), elevation_deg=(-100.0, 10.0)).validate()
    msg = str(e.value)
    assert "min_sources" in msg and "'unicorn'" in msg and "elevation_deg" in msg
    assert len(e.value.problems) >= 3


def test_training_config_refuses_the_held_out_head():
    with pytest.raises(ConfigError, match="held-out head"):
        SynthConfig(heads=("kemar-mit", "kemar-xl")).validate()
    # a scaled KEMAR is for evaluation: kemar@1.12 would be the held-out head under another name
    with pytest.raises(ConfigError, match="scaled heads"):
        SynthConfig(heads=("kemar-mit", "kemar@1.12")).validate()
    SynthConfig(split="bench", heads=("kemar@1.12", "kemar@0.86")).validate()
    for bad in ("kemar@2.5", "kemar@big", "kemar@"):
        with pytest.raises(ConfigError, match=r"kemar@S \(0.7 <= S <= 1.5\)"):
            SynthConfig(split="bench", heads=(bad,)).validate()


def test_bench_preset_holds_out_head_and_instances():
    cfg = preset("bench")
    assert "kemar-xl" in cfg.heads and cfg.held_out_instances
    spec = sample_spec(cfg, 0, 0)
    assert all(s.instance_seed >= 1 << 40 for s in spec.sources)


def test_up_to_four_sources():
    cfg = preset("train")
    cfg.min_sources, cfg.max_sources = 4, 4
    cfg.validate()
    assert len(sample_spec(cfg, 0, 0).sources) == 4
    cfg.max_sources = 5
    with pytest.raises(ConfigError):
        cfg.validate()
