"""Scenes with two sources of one class (SynthConfig.p_same_class) and the questions asked about them."""

import hashlib
import json

import numpy as np
import pytest

from agent.core.errors import ConfigError
from agent.core.geometry import great_circle_deg
from agent.core.scene import Scene, SourceLabel
from training.qa import generate
from training.qa.generate import generate_qa, names_repeated, repeated_classes
from training.synth.config import SynthConfig, preset
from training.synth.scenes import (
    SAME_CLASS_SEPARATION_DEG,
    render_scene,
    sample_spec,
    spec_to_scene,
)

#: sample_spec(preset, seed 7, scenes 0..299) as drawn before p_same_class existed (the scenes'
#: labels, seeds and levels): the option at 0 must leave every draw where it was
BEFORE = {"train": "cd8b24e2df3ebb0ea9be04d3b3abfb6c2a37cd7242e9b516013cfcbe575da2b5",
          "bench": "e9d9b46662f75f7e1561a516b19cc6cdfdb1944160eadc607bd37cf3d311b451"}


def _digest(cfg: SynthConfig, n: int = 300) -> str:
    h = hashlib.sha256()
    for i in range(n):
        s = sample_spec(cfg, 7, i)
        h.update(json.dumps([spec_to_scene(s, cfg).to_json(), s.head_seed, s.render_seed, s.snr_db,
                             s.noise_exponent, s.output_rms_dbfs, [x.instance_seed for x in s.sources]],
                            sort_keys=True).encode())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_no_same_class_share_draws_every_scene_as_before(name):
    cfg = preset(name)
    assert cfg.p_same_class == 0.0
    assert _digest(cfg) == BEFORE[name]


def test_same_class_draws_leave_the_other_scenes_bit_identical():
    plain = SynthConfig(duration_s=0.5, event_duration_s=(0.3, 0.5), rt60_s=(0.1, 0.2)).validate()
    some = SynthConfig(duration_s=0.5, event_duration_s=(0.3, 0.5), rt60_s=(0.1, 0.2), p_same_class=0.5).validate()
    changed = 0
    for i in range(40):
        a, b = sample_spec(plain, 3, i), sample_spec(some, 3, i)
        if repeated_classes(spec_to_scene(b, some)):
            changed += 1
            continue
        assert a == b, i
    assert 0 < changed < 40
    i = next(i for i in range(40) if not repeated_classes(spec_to_scene(sample_spec(some, 3, i), some)))
    audio_a, _ = render_scene(sample_spec(plain, 3, i), plain)
    audio_b, _ = render_scene(sample_spec(some, 3, i), some)
    np.testing.assert_array_equal(audio_a, audio_b)


def test_every_multi_source_scene_repeats_a_class_at_least_30_deg_apart():
    cfg = SynthConfig(min_sources=2, max_sources=4, p_same_class=1.0, min_separation_deg=0.0).validate()
    for i in range(300):
        spec = sample_spec(cfg, 11, i)
        labels = [s.label for s in spec.sources]
        assert len(set(labels)) == len(labels) - 1, labels  # exactly one class twice
        twice = next(c for c in labels if labels.count(c) == 2)
        a, b = (s for s in spec.sources if s.label == twice)
        assert great_circle_deg(a.azimuth_deg, a.elevation_deg, b.azimuth_deg, b.elevation_deg) \
            >= SAME_CLASS_SEPARATION_DEG
    one = SynthConfig(min_sources=1, max_sources=1, p_same_class=1.0).validate()
    assert all(len(sample_spec(one, 11, i).sources) == 1 for i in range(20))  # one source: nothing to repeat


def test_same_class_share_is_validated():
    with pytest.raises(ConfigError, match="p_same_class must be in"):
        SynthConfig(p_same_class=1.5).validate()


def _scene(sources) -> Scene:
    return Scene("s1", "audio/s1.wav", 48_000, 5.0, [SourceLabel(*s) for s in sources], None, "kemar-mit")


TWO_DOGS = [("dog", 60.0, 0.0, 2.0, 0.0, 4.0), ("dog", -60.0, 0.0, 3.0, 0.5, 5.0),
            ("siren", 170.0, 10.0, 1.5, 1.0, 3.0)]


def test_no_question_names_a_class_the_scene_holds_twice():
    scene = _scene(TWO_DOGS)
    assert repeated_classes(scene) == {"dog"}
    items = [q for seed in range(30) for q in generate_qa([scene], seed=seed)]
    named = [q for q in items if any(q.extra["params"].get(k) == "dog" for k in ("a", "b", "label"))]
    assert not named
    # questions about the siren, and ones that name no class (how many?), are still asked
    assert any(q.extra["params"].get("a") == "siren" for q in items)
    count = [q for q in items if q.task == "l1_count" and q.extra["form"] == "choice"]
    assert count and all(q.extra["answer_text"] == "3" for q in count)
    assert names_repeated(scene, {"a": "siren", "b": "dog"}) and not names_repeated(scene, {"a": "siren"})


def test_scenes_of_distinct_classes_get_the_same_questions_as_without_the_check(monkeypatch):
    scene = _scene([("dog", 60.0, 0.0, 2.0, 0.0, 4.0), ("speech", -60.0, 0.0, 3.0, 0.5, 5.0),
                    ("siren", 170.0, 10.0, 1.5, 1.0, 3.0)])
    assert not repeated_classes(scene)
    with_check = [q.to_json() for seed in range(5) for q in generate_qa([scene], seed=seed)]
    monkeypatch.setattr(generate, "names_repeated", lambda scene, params: False)
    assert [q.to_json() for seed in range(5) for q in generate_qa([scene], seed=seed)] == with_check
