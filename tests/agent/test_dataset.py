import json
import os

import numpy as np
import pytest
import soundfile as sf

from agent.core.dataset import Dataset, read_dataset, read_wav, write_jsonl, write_wav
from agent.core.errors import DatasetError

SCENE = {"id": "s1", "audio": "audio/s1.wav", "sample_rate_hz": 16000, "duration_s": 0.5,
         "sources": [{"label": "siren", "azimuth_deg": 60.0, "elevation_deg": 0.0, "distance_m": 2.0,
                      "onset_s": 0.0, "offset_s": 0.4}],
         "room": None, "hrtf": "kemar-mit", "note": "extra keys are kept"}


def make(tmp_path, scene=SCENE, audio=None, rate=16000):
    write_jsonl(tmp_path / "scenes.jsonl", [scene])
    audio = np.zeros((2, 8000), np.float32) if audio is None else audio
    write_wav(tmp_path / "audio" / "s1.wav", audio, rate)
    return tmp_path


def test_round_trip_keeps_extra_keys(tmp_path):
    ds = read_dataset(make(tmp_path))
    assert ds.scenes[0].sources[0].azimuth_deg == 60.0
    assert ds.scenes[0].to_json()["note"] == "extra keys are kept"
    audio, rate = ds.load_audio(ds.scenes[0])
    assert audio.shape == (2, 8000) and rate == 16000


def test_missing_key_names_file_and_line(tmp_path):
    bad = {k: v for k, v in SCENE.items() if k != "hrtf"}
    make(tmp_path, bad)
    with pytest.raises(DatasetError, match=r"scenes.jsonl:1: missing required key\(s\) \['hrtf'\]"):
        read_dataset(tmp_path)


def test_elevation_out_of_range(tmp_path):
    bad = json.loads(json.dumps(SCENE))
    bad["sources"][0]["elevation_deg"] = 120
    make(tmp_path, bad)
    with pytest.raises(DatasetError, match="elevation_deg' must be <= 90"):
        read_dataset(tmp_path)


def test_mono_file_rejected(tmp_path):
    make(tmp_path)
    sf.write(tmp_path / "audio" / "s1.wav", np.zeros(8000), 16000)
    with pytest.raises(DatasetError, match="expected 2 channels"):
        read_dataset(tmp_path)


def test_wrong_rate_rejected(tmp_path):
    make(tmp_path, rate=22050)
    with pytest.raises(DatasetError, match="22050 Hz, but scenes.jsonl says 16000"):
        read_dataset(tmp_path)


def test_missing_and_corrupt_wav(tmp_path):
    make(tmp_path)
    (tmp_path / "audio" / "s1.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(DatasetError, match="not a readable audio file"):
        read_dataset(tmp_path)
    (tmp_path / "audio" / "s1.wav").unlink()
    with pytest.raises(DatasetError, match="audio file is missing"):
        read_dataset(tmp_path)


def test_bad_json_line(tmp_path):
    make(tmp_path)
    with open(tmp_path / "scenes.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(DatasetError, match=r"scenes.jsonl:2: invalid JSON"):
        read_dataset(tmp_path)


def test_atomic_write_leaves_no_part_files(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros((2, 100)), 48000)
    with pytest.raises(ValueError):
        write_wav(tmp_path / "b.wav", np.zeros((2, 100)), 48000, sample_format="int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]
    audio, rate = read_wav(tmp_path / "a.wav")
    assert rate == 48000


def test_written_files_get_the_mode_a_plain_open_gives(tmp_path):
    """Atomic writes go through a private temp file; what lands is readable as any new file."""
    make(tmp_path)
    (tmp_path / "plain").write_text("x")
    want = (tmp_path / "plain").stat().st_mode & 0o777
    for f in ("scenes.jsonl", "audio/s1.wav"):
        assert (tmp_path / f).stat().st_mode & 0o777 == want, f
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


# ---- audio paths stay inside the dataset folder ----

AUDIO_FORM = r"a relative path inside the dataset folder, e\.g\. audio/s000001\.wav"


@pytest.fixture()
def outside(tmp_path):
    """A dataset folder tmp/ds and, beside it, a valid wav that no dataset line may reach."""
    secret = tmp_path / "outside" / "secret.wav"
    write_wav(secret, np.full((2, 8000), 0.25, np.float32), 16000)
    make(tmp_path / "ds")
    return tmp_path / "ds", secret


@pytest.fixture()
def opened(monkeypatch):
    """Every path soundfile is asked to open (header or samples)."""
    seen: list[str] = []
    info, read = sf.info, sf.read
    monkeypatch.setattr(sf, "info", lambda p, *a, **k: seen.append(str(p)) or info(p, *a, **k))
    monkeypatch.setattr(sf, "read", lambda p, *a, **k: seen.append(str(p)) or read(p, *a, **k))
    return seen


@pytest.mark.parametrize("audio", ["../outside/secret.wav", "audio/../../outside/secret.wav", "ABSOLUTE",
                                   "audio\\s1.wav", "C:/outside/secret.wav", "c:audio/s1.wav"])
def test_audio_path_must_be_relative_and_inside(outside, opened, audio):
    root, secret = outside
    audio = str(secret) if audio == "ABSOLUTE" else audio
    write_jsonl(root / "scenes.jsonl", [{**SCENE, "audio": audio}])
    with pytest.raises(DatasetError, match=rf"scenes\.jsonl:1: 'audio' must be {AUDIO_FORM}"):
        read_dataset(root)
    with pytest.raises(DatasetError, match=AUDIO_FORM):
        read_dataset(root, check_audio=False)
    assert opened == []


def test_symlink_out_of_the_dataset_is_refused_and_not_read(outside, opened):
    root, secret = outside
    link = root / "audio" / "s1.wav"
    link.unlink()
    link.symlink_to(os.path.relpath(secret, link.parent))
    assert link.is_file()  # the link works: only the containment check stops it
    with pytest.raises(DatasetError, match=rf"scenes\.jsonl:1: audio 'audio/s1\.wav' resolves to .*secret\.wav, "
                                           rf"outside the dataset folder .*; it must be {AUDIO_FORM}"):
        read_dataset(root)
    ds = read_dataset(root, check_audio=False)  # no header check: loading is refused instead
    with pytest.raises(DatasetError, match=f"outside the dataset folder .*; it must be {AUDIO_FORM}"):
        ds.load_audio(ds.scenes[0])
    with pytest.raises(DatasetError, match=AUDIO_FORM):
        ds.audio_path(ds.scenes[0])
    assert opened == []


def test_audio_path_refuses_a_scene_built_in_code(tmp_path):
    make(tmp_path)
    scene = read_dataset(tmp_path).scenes[0]
    scene.audio = "../s1.wav"
    with pytest.raises(DatasetError, match=rf"{AUDIO_FORM} \(no '\.\.' component\), got '\.\./s1\.wav'"):
        Dataset(tmp_path, [scene]).audio_path(scene)


def test_symlinks_that_stay_inside_are_followed(tmp_path, opened):
    """A symlinked dataset root, and audio linked to another file inside the dataset, still load."""
    make(tmp_path / "ds")
    store = tmp_path / "ds" / "store" / "s1.wav"
    store.parent.mkdir()
    (tmp_path / "ds" / "audio" / "s1.wav").rename(store)
    (tmp_path / "ds" / "audio" / "s1.wav").symlink_to("../store/s1.wav")
    (tmp_path / "link").symlink_to(tmp_path / "ds", target_is_directory=True)
    ds = read_dataset(tmp_path / "link")
    assert ds.audio_path(ds.scenes[0]) == tmp_path / "link" / "audio" / "s1.wav"
    audio, rate = ds.load_audio(ds.scenes[0])
    assert audio.shape == (2, 8000) and rate == 16000
    assert opened[-1] == str(tmp_path / "link" / "audio" / "s1.wav")  # the spy sees what is opened


# ---- qa.jsonl: option letters ----

QA = {"id": "q1", "scene_id": "s1", "level": "L1", "task": "l1_sector", "question": "Where is the siren?",
      "options": ["left", "front-left", "right", "back-left"], "answer": "B"}


def test_qa_answer_must_be_one_option_letter(tmp_path):
    make(tmp_path)
    write_jsonl(tmp_path / "qa.jsonl", [QA])
    assert read_dataset(tmp_path).qa[0].answer == "B"
    write_jsonl(tmp_path / "qa.jsonl", [QA, {**QA, "id": "q2", "answer": "ABC"}])
    with pytest.raises(DatasetError, match=r"qa\.jsonl:2: 'answer' must be exactly one option letter of "
                                           r"\['A', 'B', 'C', 'D'\] for 4 options, got 'ABC'"):
        read_dataset(tmp_path)
