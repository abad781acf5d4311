"""The real-sounds kit: catalog on a fake package tree, the opensfx container, the split, and
scenes drawing real recordings (issue 22). No network here except the `network` test."""

import json
import struct

import numpy as np
import pytest
import soundfile as sf

from agent.core.errors import BinauraError
from training.synth.config import SynthConfig
from training.synth.realsounds import pool as pool_mod
from training.synth.realsounds.catalog import CATALOG_FILE, build_real_sounds
from training.synth.realsounds.opensfx import parse_cat
from training.synth.realsounds.packages import PACKAGES, PackageSpec
from training.synth.realsounds.split import HELD_OUT, TRAIN, assign_splits, train_half
from training.synth.scenes import dry_signal, render_scene, sample_spec

RATE = 44100
#: One tone per (class, recording): the dry signal's pitch says which recording it came from.
TONES_HZ = {("dog", 0): 300.0, ("dog", 1): 420.0, ("dog", 2): 560.0, ("dog", 3): 700.0,
            ("bird", 0): 2000.0, ("bird", 1): 2600.0, ("bird", 2): 3200.0, ("bird", 3): 3800.0,
            ("siren", 0): 900.0, ("siren", 1): 1100.0, ("siren", 2): 1300.0, ("siren", 3): 1500.0}


def _tone(f_hz, seconds=0.6, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)


def _fake_package(root):
    """A package tree: 4 recordings per class (wav and ogg, one at 22.05 kHz), one undecodable
    file, one unmapped file, one exact duplicate, and a rain ambience."""
    d = root / "usr/share/fake"
    d.mkdir(parents=True)
    for (label, k), f in TONES_HZ.items():
        if label == "bird" and k == 0:
            sf.write(str(d / f"{label}{k}.ogg"), _tone(f, rate=22050), 22050, format="OGG", subtype="VORBIS")
        else:
            sf.write(str(d / f"{label}{k}.wav"), _tone(f), RATE)
    (d / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    sf.write(str(d / "meow.wav"), _tone(700.0), RATE)
    (d / "dog0_copy.wav").write_bytes((d / "dog0.wav").read_bytes())
    sf.write(str(d / "rain.wav"), np.random.default_rng(0).normal(0, 0.1, RATE * 2).astype(np.float32), RATE)
    return PackageSpec("fake-sounds", "debian", "1.0-1", None, "CC0", "usr/share/fake",
                       (("dog*.wav", "dog"), ("bird*", "bird"), ("siren*.wav", "siren"),
                        ("broken.wav", "dog"), ("rain.wav", "ambience:rain")))


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    tree = tmp_path_factory.mktemp("pkg")
    spec = _fake_package(tree)
    out = tmp_path_factory.mktemp("kit") / "real-sounds"
    summary = build_real_sounds(out, packages=(spec,), trees={spec.name: tree})
    return out, summary


def _catalog(out):
    return [json.loads(line) for line in (out / CATALOG_FILE).read_text().splitlines()]


def test_catalog_records_each_file_and_refuses_by_name(kit):
    out, summary = kit
    rows = _catalog(out)
    assert len(rows) == 13 and summary["files"] == 13  # 12 tones + rain; copy and broken file not kept
    assert summary["refused"][0]["path"] == "usr/share/fake/broken.wav"
    assert "does not decode" in summary["refused"][0]["reason"]
    assert summary["unmapped_files"] == 1 and summary["duplicates"] == 1  # meow.wav; dog0_copy.wav
    bird0 = next(r for r in rows if r["path"].endswith("bird0.ogg"))
    assert bird0["sample_rate_hz"] == 22050 and bird0["band_limited"] and bird0["channels"] == 1
    dog1 = next(r for r in rows if r["path"].endswith("dog1.wav"))
    assert (dog1["label"], dog1["package"], dog1["version"], dog1["license"]) == ("dog", "fake-sounds", "1.0-1", "CC0")
    assert not dog1["band_limited"] and abs(dog1["duration_s"] - 0.6) < 1e-3
    x, r = sf.read(str(out / dog1["file"]))  # mono FLAC at the original rate, the same tone
    assert r == RATE and x.ndim == 1 and abs(np.argmax(np.abs(np.fft.rfft(x))) * r / len(x) - 420.0) < 3
    rain = next(r for r in rows if r["kind"] == "ambience")
    assert rain["ambience"] == "rain" and rain["label"] is None
    assert summary["counts"]["dog"][TRAIN] + summary["counts"]["dog"][HELD_OUT] == 4
    assert "knocking" in summary["missing_classes"]


def test_opensfx_container_parses_names_licenses_and_audio():
    def wav(f_hz):
        import io

        b = io.BytesIO()
        sf.write(b, _tone(f_hz, 0.1), RATE, format="WAV", subtype="PCM_16")
        return b.getvalue()

    names = [b'"Horn". Original "claxon.wav" by "han1". License: Creative Commons Zero 1.0.',
             b'"Wind". By A. License: Creative Commons Attribution 3.0 Unported.', b'"Nothing".']
    wavs = [wav(440), wav(880), wav(0)[:44]]  # the last one a bare header, as opensfx's empty entries
    offset, index, blob = 8 * len(names), b"", b""
    for name, w in zip(names, wavs, strict=True):  # size counts the WAV bytes only, not the name
        index += struct.pack("<II", (offset + len(blob)) | 0x80000000, len(w))
        blob += bytes([len(name)]) + name + w + b"\0" * 22  # opensfx leaves 22 bytes between entries
    entries = parse_cat(index + blob)
    assert [e.title for e in entries] == ["Horn", "Wind", "Nothing"]
    assert entries[0].original == "claxon.wav" and entries[0].license == "Creative Commons Zero 1.0"
    assert entries[1].original is None and entries[1].license.startswith("Creative Commons Attribution 3.0")
    x, r = sf.read(__import__("io").BytesIO(entries[1].wav))
    assert r == RATE and abs(np.argmax(np.abs(np.fft.rfft(x))) * r / len(x) - 880) < 15
    assert len(entries[2].wav) == 44 and entries[2].wav.startswith(b"RIFF")
    with pytest.raises(BinauraError, match="outside"):
        parse_cat(struct.pack("<II", 8, 999) + b"x")


def _entries(n_packages=4, per_package=6):
    rows = []
    for p in range(n_packages):
        for k in range(per_package):
            rec = f"pkg{p}:rec{k // 2}"  # two files per recording
            rows.append({"kind": "sound", "label": "bird" if (k // 2) % 2 else "dog", "ambience": None,
                         "package": f"pkg{p}", "recording": rec, "speaker": None, "duration_s": 1.0 + k})
    rows += [{"kind": "sound", "label": "speech", "ambience": None, "package": "talk", "recording": f"talk:{s}/{w}",
              "speaker": f"talk/{s}", "duration_s": 0.5} for s in "abcdefgh" for w in range(5)]
    return rows


def test_split_never_puts_a_recording_or_speaker_on_both_sides_and_is_deterministic():
    a, b = _entries(), list(reversed(_entries()))
    assign_splits(a)
    assign_splits(b)
    key = lambda e: (e["recording"], e["label"])  # noqa: E731
    assert {key(e): e["split"] for e in a} == {key(e): e["split"] for e in b}  # order does not matter
    for field in ("recording", "speaker"):
        sides = {}
        for e in a:
            if e[field]:
                sides.setdefault(e[field], set()).add(e["split"])
        assert all(len(s) == 1 for s in sides.values()), field
    for label in ("dog", "bird", "speech"):
        splits = {e["split"] for e in a if e["label"] == label}
        assert splits == {TRAIN, HELD_OUT}, label
    dog_held_pkgs = {e["package"] for e in a if e["label"] == "dog" and e["split"] == HELD_OUT}
    assert len(dog_held_pkgs) == 1  # four packages: one whole package is held out
    # one recording filed under two classes whose splits disagree goes to held-out whole
    c = _entries()
    c[0]["recording"] = c[2]["recording"] = "pkg0:shared"  # a dog file and a bird file
    assign_splits(c)
    assert c[0]["split"] == c[2]["split"]


def test_pinned_units_keep_their_side_when_packages_come_and_go():
    free = _entries()
    assign_splits(free, pins={})
    flipped = {(e.get("speaker") or e["recording"]): (TRAIN if e["split"] == HELD_OUT else HELD_OUT) for e in free}
    pinned = _entries()
    assign_splits(pinned, pins=flipped)  # every unit pinned to the side the rules would not give it
    assert all(a["split"] != b["split"] for a, b in zip(free, pinned))
    # a new package joins: the pinned units stay; only the newcomers are split, among themselves
    grown = _entries() + [dict(e, package="pkgnew", recording="pkgnew:" + e["recording"], speaker=None)
                          for e in _entries() if e["label"] == "dog"]
    assign_splits(grown, pins=flipped)
    assert [e["split"] for e in grown[:len(pinned)]] == [e["split"] for e in pinned]
    assert {e["split"] for e in grown[len(pinned):]} == {TRAIN, HELD_OUT}
    # the committed pins hold sides only, and every unit of the shipped split is in them
    from training.synth.realsounds.split import default_pins
    assert set(default_pins().values()) == {TRAIN, HELD_OUT} and len(default_pins()) > 300


def test_package_tables_name_only_known_classes():
    from agent.core.labels import LABELS

    for spec in PACKAGES:
        for _pattern, target in spec.rules:
            assert target in LABELS or target.startswith("ambience:") or target in ("skip", "container"), spec.name


@pytest.fixture
def use_kit(kit, monkeypatch):
    monkeypatch.setenv(pool_mod.REAL_SOUNDS_ENV, str(kit[0]))
    pool_mod.open_real_sounds.cache_clear()
    yield kit[0]
    pool_mod.open_real_sounds.cache_clear()


def _cfg(**kw):
    return SynthConfig(classes=("dog", "bird", "siren"), max_sources=3, duration_s=1.0, p_reverberant=0.0,
                       sample_rate_hz=48000, event_duration_s=(0.8, 1.0), **kw).validate()


def test_real_share_zero_leaves_scenes_unchanged(use_kit):
    base = SynthConfig(duration_s=1.0, p_reverberant=0.0).validate()
    zero = SynthConfig(duration_s=1.0, p_reverberant=0.0, real_share=0.0).validate()
    a, b = render_scene(sample_spec(base, 3, 7), base)[0], render_scene(sample_spec(zero, 3, 7), zero)[0]
    assert np.array_equal(a, b)


@pytest.mark.parametrize("held_out", [False, True])
def test_real_share_one_draws_catalog_audio_of_the_class_and_split(use_kit, held_out):
    kw = {"split": "bench", "heads": ("kemar-mit",), "held_out_instances": True} if held_out else {}
    cfg, plain_cfg = _cfg(real_share=1.0, **kw), _cfg(**kw)
    rows = {r["id"]: r for r in _catalog(use_kit)}
    want = HELD_OUT if held_out else TRAIN
    for index in range(6):
        spec, plain = sample_spec(cfg, 11, index), sample_spec(plain_cfg, 11, index)
        # every other draw of the scene is as without real sounds
        assert [(s.label, s.azimuth_deg, s.instance_seed) for s in spec.sources] == \
               [(s.label, s.azimuth_deg, s.instance_seed) for s in plain.sources]
        for src in spec.sources:
            row = rows[src.real]
            assert row["label"] == src.label and row["split"] == want
            x = dry_signal(src, cfg.sample_rate_hz, held_out)
            peak_hz = np.argmax(np.abs(np.fft.rfft(x))) * cfg.sample_rate_hz / len(x)
            tone = TONES_HZ[(row["label"], int(row["path"][-5]))]
            assert abs(peak_hz - tone) < 20, (src.real, peak_hz, tone)
    audio, scene = render_scene(sample_spec(cfg, 11, 0), cfg)
    assert all("real" in s.extra for s in scene.sources) and np.isfinite(audio).all()


def test_an_all_real_benchmark_split_refuses_a_class_the_kit_does_not_hold(use_kit):
    bench = {"split": "bench", "heads": ("kemar-mit",), "held_out_instances": True}
    cfg = SynthConfig(classes=("dog", "water"), max_sources=2, duration_s=1.0, p_reverberant=0.0,
                      real_share=1.0, **bench).validate()
    with pytest.raises(BinauraError, match="holds none of 'water'; rebuild it"):
        for index in range(8):  # some scene draws a water source, which the fake kit lacks
            sample_spec(cfg, 11, index)
    train = SynthConfig(classes=("dog", "water"), max_sources=2, duration_s=1.0, p_reverberant=0.0,
                        real_share=1.0).validate()
    specs = [sample_spec(train, 11, index) for index in range(8)]  # training: water stays procedural
    assert {s.label for sp in specs for s in sp.sources if s.real is None} == {"water"}


def test_a_half_of_the_train_side_draws_only_its_own_recordings(use_kit):
    kit = pool_mod.open_real_sounds()
    train = {label: kit.ids(label, TRAIN) for label in ("dog", "bird", "siren")}
    halves = {h: {label: kit.ids(label, TRAIN, h) for label in train} for h in ("a", "b")}
    for label, ids in train.items():  # the halves cut the train side in two, by unit
        assert sorted(halves["a"][label] + halves["b"][label]) == sorted(ids)
        assert all(train_half(kit.entries[i]) == h for h in "ab" for i in halves[h][label])
    # a speaker's words are one unit (their recordings differ): the half follows the speaker
    talk = [{"speaker": f"talk/{s}", "recording": f"talk:{s}/{w}"} for s in "abcdefgh" for w in range(3)]
    assert all(len({train_half(e) for e in talk if e["speaker"] == f"talk/{s}"}) == 1 for s in "abcdefgh")
    assert len({train_half({"speaker": None, "recording": e["recording"]}) for e in talk}) == 2
    for h in ("a", "b"):
        cfg = _cfg(real_share=1.0, real_train_half=h)
        drawn = [src.real for index in range(8) for src in sample_spec(cfg, 5, index).sources]
        assert any(drawn)  # a class the half lacks stays procedural (None)
        assert all(r is None or train_half(kit.entries[r]) == h for r in drawn)
    with pytest.raises(BinauraError, match="half"):
        kit.ids("dog", HELD_OUT, "a")
    with pytest.raises(BinauraError, match="real_train_half"):
        _cfg(real_train_half="c")
    with pytest.raises(BinauraError, match="held_out_instances"):
        _cfg(real_train_half="a", split="bench", heads=("kemar-mit",), held_out_instances=True)


def test_real_ambience_background_keeps_the_head_coherence(use_kit):
    cfg = _cfg(real_background_share=1.0, snr_db=(0.0, 0.0))
    spec = sample_spec(cfg, 2, 0)
    assert spec.extra["real_ambience"].startswith("fake-sounds/")
    audio, scene = render_scene(spec, cfg)
    assert scene.extra["real_ambience"] == spec.extra["real_ambience"] and np.isfinite(audio).all()


def test_a_missing_kit_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(pool_mod.REAL_SOUNDS_ENV, str(tmp_path / "nothing"))
    pool_mod.open_real_sounds.cache_clear()
    try:
        with pytest.raises(BinauraError, match="make sounds"):
            sample_spec(_cfg(real_share=1.0), 0, 0)
    finally:
        pool_mod.open_real_sounds.cache_clear()


@pytest.mark.network
def test_fetch_one_small_package_end_to_end(tmp_path):
    spec = next(p for p in PACKAGES if p.name == "orage-data")
    summary = build_real_sounds(tmp_path / "kit", packages=(spec,), cache=tmp_path / "cache")
    rows = _catalog(tmp_path / "kit")
    assert sorted(r["label"] for r in rows) == ["knocking", "telephone"] and not summary["refused"]
    assert all(r["sample_rate_hz"] >= 8000 and r["duration_s"] > 0.1 for r in rows)
