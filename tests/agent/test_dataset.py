import json

import numpy as np
import pytest
import soundfile as sf

from agent.core.dataset import read_dataset, read_wav, write_jsonl, write_wav
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
    import os

    make(tmp_path)
    (tmp_path / "plain").write_text("x")
    want = (tmp_path / "plain").stat().st_mode & 0o777
    for f in ("scenes.jsonl", "audio/s1.wav"):
        assert (tmp_path / f).stat().st_mode & 0o777 == want, f
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]
