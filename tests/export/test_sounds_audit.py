"""The kit audit (export/sounds_audit.py): the verdict thresholds, and a kit whose
files are heard by a stand-in for YAMNet that names a sound by its pitch (low: a dog, high: a
bird), so a 'dog' file holding a bird's pitch is flagged, at its own rate or band-limited."""

import json

import numpy as np
import pytest
import soundfile as sf

from agent.core.audioset import AUDIOSET_TO_LABEL, AudiosetMap
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.yamnet_features import N_AUDIOSET_CLASSES
from export.sounds_audit import (
    OTHER_MIN,
    OWN_MAX,
    audit_kit,
    judge,
    summarise,
    write_audit,
)
from training.synth.realsounds.catalog import build_real_sounds
from training.synth.realsounds.packages import PackageSpec


def _peaks(**given):
    return {lab: given.get(lab, 0.0) for lab in LABELS}


@pytest.mark.parametrize(("own", "peaks", "verdict", "heard"), [
    ("dog", _peaks(dog=0.9, bird=0.3), "agrees", "dog"),
    ("dog", _peaks(dog=OWN_MAX, music=0.95), "weak", "music"),  # its own label is heard: not flagged
    ("dog", _peaks(dog=0.05, music=OTHER_MIN), "heard_as", "music"),
    ("dog", _peaks(dog=0.05, music=OTHER_MIN - 0.01), "unrecognised", "music"),
])
def test_verdicts_follow_the_two_thresholds(own, peaks, verdict, heard):
    assert judge(own, peaks) == (verdict, heard)


class PitchYamnet:
    """Hears 'Dog' below 1 kHz and 'Bird' above, per 0.96 s patch, through the real AudioSet table."""

    def __init__(self):
        names = sorted({n for ns in AUDIOSET_TO_LABEL.values() for n in ns})
        self.class_names = tuple(names + [f"other {i}" for i in range(N_AUDIOSET_CLASSES - len(names))])
        self.audioset = AudiosetMap.build(self.class_names)
        self.rates = []

    def __call__(self, x, rate):
        self.rates.append(rate)
        n = max(1, len(x) // int(0.96 * rate))
        scores = np.zeros((n, N_AUDIOSET_CLASSES), np.float32)
        f = np.argmax(np.abs(np.fft.rfft(x))) * rate / len(x)
        scores[:, self.class_names.index("Dog" if f < 1000 else "Bird")] = 0.9

        class Out:
            pass

        out = Out()
        out.scores, out.label_scores = scores, self.audioset.label_scores(scores)
        return out


def _tone(f_hz, rate, seconds=1.2):
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    tree = tmp_path_factory.mktemp("pkg")
    d = tree / "usr/share/fake"
    d.mkdir(parents=True)
    sf.write(str(d / "dog_bark.wav"), _tone(400, 44100), 44100)
    sf.write(str(d / "dog_low_rate.wav"), _tone(500, 11025), 11025)  # band-limited: upsampled for YAMNet
    sf.write(str(d / "dog_that_sings.wav"), _tone(3000, 44100), 44100)  # named a dog, sounds like a bird
    sf.write(str(d / "bird_song.wav"), _tone(2500, 44100), 44100)
    sf.write(str(d / "rain.wav"), np.random.default_rng(0).normal(0, 0.1, 44100).astype(np.float32), 44100)
    spec = PackageSpec("fake-sounds", "debian", "1.0-1", None, "CC0", "usr/share/fake",
                       (("dog_*.wav", "dog"), ("bird_*.wav", "bird"), ("rain.wav", "ambience:rain")))
    out = tmp_path_factory.mktemp("kit") / "real-sounds"
    build_real_sounds(out, packages=(spec,), trees={spec.name: tree})
    return out


def test_a_file_that_sounds_like_another_class_is_flagged_and_the_rest_agree(kit):
    yam = PitchYamnet()
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in audit_kit(kit, yam)}
    assert sorted(rows) == ["bird_song.wav", "dog_bark.wav", "dog_low_rate.wav", "dog_that_sings.wav"]  # no ambience
    assert rows["dog_bark.wav"]["verdict"] == "agrees" and rows["dog_bark.wav"]["own"] == pytest.approx(0.9)
    assert rows["dog_low_rate.wav"]["verdict"] == "agrees"
    assert sorted(yam.rates) == [16000, 44100, 44100, 44100]  # the 11 kHz file reaches YAMNet at 16 kHz
    sings = rows["dog_that_sings.wav"]
    assert (sings["verdict"], sings["heard"], sings["own"]) == ("heard_as", "bird", 0.0)
    assert sings["top_audioset"][0] == ["Bird", pytest.approx(0.9)]
    s = summarise(list(rows.values()))
    assert s["verdicts"] == {"agrees": 3, "heard_as": 1}
    assert [r["path"] for r in s["heard_as"]] == [sings["path"]]
    assert s["by_label"]["dog/" + sings["split"]]["heard_as"] == 1


def test_the_report_is_written_whole_and_a_missing_kit_is_named(kit, tmp_path, monkeypatch):
    import agent.localize.yamnet as yamnet_mod

    monkeypatch.setattr(yamnet_mod, "YamnetRuntime", PitchYamnet)
    out = tmp_path / "audit.json"
    write_audit(kit, out)
    report = json.loads(out.read_text())
    assert report["files"] == 4 and len(report["rows"]) == 4 and report["kit"]["files"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["audit.json"]  # no temp file left behind
    with pytest.raises(BinauraError, match="no real-sounds kit at .*nowhere.*summary.json"):
        audit_kit(tmp_path / "nowhere", PitchYamnet())
