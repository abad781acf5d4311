"""Two sources of one class are two sound-makers: two real recordings (speakers), two TTS voices,
not one theme recording twice, wherever the class's pool holds another; a pool of one is played twice.
A tiny real-sounds kit is written here; no kit needs to be installed."""

import json

import numpy as np
import pytest
import soundfile as sf

from training.synth import scenes
from training.synth import sounds as sounds_mod
from training.synth import speech as speech_mod
from training.synth.config import SynthConfig
from training.synth.realsounds import pool as pool_mod
from training.synth.realsounds.catalog import CATALOG_FILE, FORMAT, SUMMARY_FILE
from training.synth.realsounds.split import TRAIN, unit_of
from training.synth.scenes import dry_signal, sample_spec, sound_maker

RATE = 48000
#: (entry id, class, recording, speaker, tone Hz): two dogs; one siren; two takes of one bird and
#: another bird; two takes of one stream; two words of one talker and one of another; a rain bed.
ENTRIES = (("dog/a", "dog", "dog-a", None, 300.0), ("dog/b", "dog", "dog-b", None, 520.0),
           ("siren/a", "siren", "siren-a", None, 900.0),
           ("bird/a1", "bird", "bird-a", None, 2000.0), ("bird/a2", "bird", "bird-a", None, 2300.0),
           ("bird/b", "bird", "bird-b", None, 3100.0),
           ("water/1", "water", "water-a", None, 700.0), ("water/2", "water", "water-a", None, 800.0),
           ("speech/a1", "speech", "talk:a/1", "talk/a", 150.0), ("speech/a2", "speech", "talk:a/2", "talk/a", 160.0),
           ("speech/b1", "speech", "talk:b/1", "talk/b", 220.0),
           ("rain/1", None, "rain-a", None, 60.0))
TONE_OF = {e[0]: e[4] for e in ENTRIES}
CLASSES = ("dog", "siren", "bird", "water", "speech")


def _write_kit(root):
    """A kit folder as `binaura synth-sounds` leaves it, reduced to what scenes read: every entry on
    the train side, full band, one tone each (its pitch says which file a signal came from)."""
    rows = []
    for entry_id, label, recording, speaker, tone_hz in ENTRIES:
        file = f"audio/{entry_id.replace('/', '-')}.wav"
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(0.3 * RATE)) / RATE
        sf.write(str(root / file), (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32), RATE)
        rows.append({"id": entry_id, "file": file, "kind": "sound" if label else "ambience", "label": label,
                     "ambience": None if label else "rain", "split": TRAIN, "band_limited": False,
                     "recording": recording, "speaker": speaker, "sample_rate_hz": RATE})
    (root / CATALOG_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / SUMMARY_FILE).write_text(json.dumps({"format": FORMAT}))
    return root


@pytest.fixture
def tiny_kit(tmp_path, monkeypatch):
    root = _write_kit(tmp_path / "real-sounds")
    monkeypatch.setenv(pool_mod.REAL_SOUNDS_ENV, str(root))
    pool_mod.open_real_sounds.cache_clear()
    yield pool_mod.open_real_sounds()
    pool_mod.open_real_sounds.cache_clear()


def _pairs(cfg, n=60, seed=4):
    """(scene spec, the two sources of its repeated class) for scenes 0..n-1."""
    out = []
    for i in range(n):
        spec = sample_spec(cfg, seed, i)
        labels = [s.label for s in spec.sources]
        twice = next(c for c in labels if labels.count(c) == 2)
        out.append((spec, [s for s in spec.sources if s.label == twice]))
    return out


def _without_apart(monkeypatch):
    """Draw as before sources of one class were kept apart: every pick ignores what the scene plays."""
    pick = pool_mod.RealSounds.pick
    monkeypatch.setattr(pool_mod.RealSounds, "pick", lambda self, *a, avoid=(), again=None, half="": pick(self, *a, half=half))
    monkeypatch.setattr(scenes, "_apart_instances", lambda cfg, sources, rng: None)


def test_a_pick_passes_over_the_recordings_and_speakers_the_scene_plays(tiny_kit):
    want = {("dog", "dog/a"): {"dog/b"},  # another recording
            ("bird", "bird/a1"): {"bird/b"},  # not the other take of the same bird
            ("speech", "speech/a1"): {"speech/b1"},  # another talker, not another word of the same one
            ("water", "water/1"): {"water/2"},  # one recording only: at least another take
            ("siren", "siren/a"): {"siren/a"}}  # a pool of one is played again rather than failing
    for (label, playing), expected in want.items():
        got = {tiny_kit.pick(label, TRAIN, np.random.default_rng(s), 0.25, avoid=[playing]) for s in range(30)}
        assert got == expected, (label, got)
    for s in range(30):  # a draw that replays nothing is the draw without avoid, and the stream advances alike
        a, b = np.random.default_rng(s), np.random.default_rng(s)
        plain = tiny_kit.pick("bird", TRAIN, a, 0.25)
        kept = tiny_kit.pick("bird", TRAIN, b, 0.25, avoid=["bird/b"], again=np.random.default_rng(99))
        assert kept == plain if plain != "bird/b" else kept in ("bird/a1", "bird/a2")
        assert a.random() == b.random()


def test_two_real_sources_of_one_class_play_two_recordings(tiny_kit):
    cfg = SynthConfig(classes=CLASSES, min_sources=2, max_sources=2, p_same_class=1.0, real_share=1.0,
                      duration_s=1.0, event_duration_s=(0.5, 1.0), p_reverberant=0.0).validate()
    seen = set()
    for _spec, (a, b) in _pairs(cfg):
        seen.add(a.label)
        ea, eb = tiny_kit.entries[a.real], tiny_kit.entries[b.real]
        if a.label == "siren":
            assert a.real == b.real == "siren/a"
        elif a.label == "water":
            assert a.real != b.real
        else:
            assert (ea["speaker"] or ea["recording"]) != (eb["speaker"] or eb["recording"]), (a.real, b.real)
    assert seen == set(CLASSES)
    # what the two dogs sound like: each its own recording's tone
    _spec, dogs = next(p for p in _pairs(cfg) if p[1][0].label == "dog")
    for src in dogs:
        x = dry_signal(src, cfg.sample_rate_hz, False)
        peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * cfg.sample_rate_hz / len(x)
        assert abs(peak_hz - TONE_OF[src.real]) < 20, (src.real, peak_hz)
    assert {s.real for s in dogs} == {"dog/a", "dog/b"}


def test_only_a_replayed_recording_is_drawn_again(tiny_kit, monkeypatch):
    cfg = SynthConfig(classes=CLASSES, max_sources=3, p_same_class=0.6, real_share=1.0, real_background_share=0.5,
                      duration_s=1.0, event_duration_s=(0.5, 1.0), p_reverberant=0.0).validate()
    now = [sample_spec(cfg, 8, i) for i in range(60)]
    _without_apart(monkeypatch)
    before = [sample_spec(cfg, 8, i) for i in range(60)]
    redrawn = 0
    for a, b in zip(before, now, strict=True):
        labels = [s.label for s in a.sources]
        if len(set(labels)) == len(labels):
            assert a == b  # no repeated class: the very same scene
            continue
        assert a.extra == b.extra  # the ambience and every other draw of the scene stay
        for k, (x, y) in enumerate(zip(a.sources, b.sources, strict=True)):
            unit = unit_of(tiny_kit.entries[x.real])  # a recording, or a talker
            replays = any(s.label == x.label and unit_of(tiny_kit.entries[s.real]) == unit for s in a.sources[:k])
            if x.real != y.real:
                assert replays and x.label != "siren", (x, y)
                redrawn += 1
            assert (x.label, x.azimuth_deg, x.instance_seed, x.level_db) == \
                   (y.label, y.azimuth_deg, y.instance_seed, y.level_db)
    assert redrawn > 0


@pytest.mark.parametrize("held_out", [False, True])
def test_two_procedural_or_tts_sources_of_one_class_are_two_sound_makers(held_out, monkeypatch):
    kw = {"split": "bench", "heads": ("kemar-mit",), "held_out_instances": True} if held_out else {}
    cfg = SynthConfig(classes=("speech", "alarm", "telephone", "dog"), min_sources=2, max_sources=2,
                      p_same_class=1.0, duration_s=1.0, event_duration_s=(0.5, 1.0), **kw).validate()
    now = _pairs(cfg, 200)
    for _spec, (a, b) in now:
        assert sound_maker(a.label, a.instance_seed, held_out) != sound_maker(b.label, b.instance_seed, held_out)
    _without_apart(monkeypatch)
    before = _pairs(cfg, 200)
    changed = [i for i, (x, y) in enumerate(zip(before, now, strict=True)) if x[0] != y[0]]
    assert changed  # one voice twice (3 held-out voices, 11 training ones) or the theme twice happened before
    for i in changed:  # ... and only the second of the pair got another instance
        (x, (_, bx)), (y, (_, by)) = before[i], now[i]
        assert bx.instance_seed != by.instance_seed and x.sources[0] == y.sources[0]
        assert sound_maker(bx.label, bx.instance_seed, held_out) in \
               {sound_maker(s.label, s.instance_seed, held_out) for s in x.sources if s is not bx}


def test_sound_maker_names_the_voice_and_theme_the_generators_play(monkeypatch):
    voices, themes = [], []

    def fake_tts(engine, voice, text, rate_hz, speed=160, pitch=50):
        voices.append((engine, voice))
        return np.zeros(4000)

    def fake_theme(name, rate):
        themes.append(name)

    monkeypatch.setattr(speech_mod, "tts", fake_tts)
    monkeypatch.setattr(sounds_mod, "_theme_sound", fake_theme)  # no theme here: the procedural one plays
    for held_out in (False, True):
        for seed in range(12):
            src = scenes.SourceSpec("speech", 0.0, 0.0, 1.0, 0.0, 0.3, 0.0, seed)
            voices.clear()
            dry_signal(src, 16000, held_out)
            assert set(voices) == {sound_maker("speech", seed, held_out)[:2]}
    for label in ("alarm", "telephone"):
        for seed in range(40):
            themes.clear()
            dry_signal(scenes.SourceSpec(label, 0.0, 0.0, 1.0, 0.0, 0.3, 0.0, seed), 16000, False)
            theme = sound_maker(label, seed, False)
            assert themes == ([theme] if isinstance(theme, str) else []), (label, seed)

