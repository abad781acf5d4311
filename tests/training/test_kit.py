"""The synthesis kit renders the same scenes without slab, the theme package or the TTS programs."""

import numpy as np
import pytest

from agent.core.errors import BinauraError
from training.synth import kit as kit_mod
from training.synth.config import preset
from training.synth.hrtf import load_kemar
from training.synth.scenes import render_scene, sample_spec
from training.synth.speech import TRAIN_VOICES, tts


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("kit") / "kit"
    kit_mod.pack_kit(out, per_voice=2)
    return out


@pytest.fixture
def use_kit(kit, monkeypatch):
    monkeypatch.setenv(kit_mod.KIT_ENV, str(kit))
    load_kemar.cache_clear()
    yield kit
    load_kemar.cache_clear()


def _scene(index: int):
    cfg = preset("train")
    spec = sample_spec(cfg, 5, index)
    return [s.label for s in spec.sources], render_scene(spec, cfg)[0]


def test_kit_kemar_is_the_measured_set(kit, monkeypatch):
    system = load_kemar(48000)
    load_kemar.cache_clear()
    monkeypatch.setenv(kit_mod.KIT_ENV, str(kit))
    try:
        from_kit = load_kemar(48000)
    finally:
        load_kemar.cache_clear()
    assert np.array_equal(system.azimuth_deg, from_kit.azimuth_deg)
    assert np.abs(system.aligned - from_kit.aligned).max() < 1e-6


def test_scenes_without_speech_render_identically(kit, monkeypatch):
    labels, plain = _scene(1)  # siren + clapping (seed 5)
    assert "speech" not in labels
    monkeypatch.setenv(kit_mod.KIT_ENV, str(kit))
    monkeypatch.setenv("PATH", "/nonexistent")  # no espeak-ng, no flite
    load_kemar.cache_clear()
    try:
        _, with_kit = _scene(1)
    finally:
        load_kemar.cache_clear()
    assert np.abs(plain - with_kit).max() < 1e-6


def test_speech_comes_from_the_pool_deterministically(use_kit, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    engine, voice, _ = TRAIN_VOICES[0]
    a = tts(engine, voice, "Please open the window.", 48000)
    b = tts(engine, voice, "Please open the window.", 48000)
    assert a.dtype == np.float32 and len(a) > 48000 // 4 and np.array_equal(a, b)
    assert np.sqrt(np.mean(a**2)) > 1e-3  # real audio, not silence
    with pytest.raises(BinauraError, match="training voices only"):
        tts("flite", "slt", "held out voice", 48000)  # a benchmark voice is not in a kit


def test_a_folder_that_is_not_a_kit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(kit_mod.KIT_ENV, str(tmp_path))
    kit_mod._checked.cache_clear()
    with pytest.raises(BinauraError, match="not a synthesis kit"):
        kit_mod.kit_dir()
