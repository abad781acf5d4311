import numpy as np
import pytest

from agent.core.labels import LABELS
from training.synth.scenes import SourceSpec, dry_signal
from training.synth.sounds import PROCEDURAL


def test_every_label_has_a_generator():
    assert set(PROCEDURAL) | {"speech"} == set(LABELS)
    assert len(LABELS) >= 16


@pytest.mark.parametrize("label", LABELS)
def test_generators_are_seeded_and_vary(label):
    def make(seed):
        return dry_signal(SourceSpec(label, 0, 0, 1, 0.0, 1.5, 0.0, seed), 48_000, held_out=False)

    a, b, c = make(1), make(1), make(2)
    assert a.shape == (72_000,) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # Unit RMS over the active part: the whole clip (with its gaps) can only be quieter.
    assert 0.1 < np.sqrt(np.mean(a**2)) <= 1.01


def test_held_out_speech_uses_other_voices():
    from training.synth.speech import HELD_OUT_VOICES, TRAIN_VOICES

    assert set(HELD_OUT_VOICES).isdisjoint(TRAIN_VOICES)
    langs = {v[2] for v in TRAIN_VOICES}
    engines = {v[0] for v in TRAIN_VOICES}
    assert len(langs) >= 4 and engines == {"espeak-ng", "flite"}
