"""End to end through the command line on a tiny dataset."""

import json

import pytest

from export.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = out / "cfg.json"
    cfg.write_text(json.dumps({"duration_s": 1.5, "event_duration_s": [0.8, 1.5], "rt60_s": [0.2, 0.4]}))
    assert main(["synth", "--out", str(out / "ds"), "--scenes", "6", "--seed", "3", "--preset", "bench",
                 "--config", str(cfg), "--workers", "2", "--quiet"]) == 0
    return out


def test_bench_localize_writes_every_metric_key(tiny):
    out = tiny / "loc.json"
    assert main(["bench", "localize", "--data", str(tiny / "ds"), "--model", "oracle,gccphat,chance",
                 "--out", str(out), "--quiet"]) == 0
    m = json.loads(out.read_text())
    for k in ("n_sources", "angular_error_mean_deg", "azimuth_mae_deg", "elevation_mae_deg",
              "front_back_confusion", "er20", "distance_mae_m", "distance_er05", "class_accuracy",
              "detection_f1", "by_condition"):
        assert k in m
    assert m["angular_error_mean_deg"] == 0.0 and m["class_accuracy"] == 1.0
    assert m["models"]["gccphat"]["class_accuracy"] is None
    assert (tiny / "loc.png").stat().st_size > 1000


def test_bench_qa_oracle_scores_100(tiny):
    out = tiny / "qa.json"
    assert main(["bench", "qa", "--data", str(tiny / "ds"), "--model", "oracle,text-only,chance",
                 "--out", str(out), "--quiet"]) == 0
    m = json.loads(out.read_text())
    assert m["overall"] == 1.0 and m["L1"] == 1.0 and m["L2"] == 1.0 and m["L3"] == 1.0
    assert m["models"]["chance"]["overall"] < 0.5


def test_bad_input_gives_one_clear_error(tiny, tmp_path, capsys):
    assert main(["bench", "localize", "--data", str(tmp_path), "--out", str(tmp_path / "m.json")]) == 2
    assert "scenes.jsonl" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "x"), "--scenes", "-2"]) == 2
    assert "--scenes must be >= 1" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"classes": ["dog", "dragon"], "max_sources": 2}))
    assert main(["synth", "--out", str(tmp_path / "y"), "--scenes", "1", "--config", str(bad)]) == 2
    assert "dragon" in capsys.readouterr().err
    assert not (tmp_path / "y" / "scenes.jsonl").exists()


def test_bridge_record_from_an_emulated_board(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    from firmware_bridge.emulator import DeviceEmulator, FaultConfig, PtyLink

    x = (np.random.default_rng(0).uniform(-0.3, 0.3, (48_000, 2))).astype(np.float32)
    link = PtyLink(DeviceEmulator(x, 48_000, 480, hello_s=0.1), FaultConfig(drop_rate=0.02, seed=2),
                   speed=2.0).start()
    try:
        out = tmp_path / "take.wav"
        assert main(["bridge", "record", f"bridge:serial://{link.port}", "--seconds", "0.8", "--out", str(out)]) == 0
    finally:
        link.stop()
    data, rate = sf.read(out)
    assert rate == 48_000 and data.shape[1] == 2 and len(data) > 10_000
    assert "gaps" in capsys.readouterr().out
    assert main(["bridge", "probe", "bridge:tcp://x:1"]) == 2
    assert "unknown transport 'tcp'" in capsys.readouterr().err
