"""Head-size calibration recovers a scaled KEMAR's size from one recording (agent.localize.head_size)."""

import json

import numpy as np
import pytest
import soundfile as sf

from agent.core.errors import AudioFormatError, BinauraError
from agent.localize.head_size import (
    KEMAR_ITD_AZIMUTH_DEG,
    KEMAR_ITD_S,
    estimate_head_scale,
    interaural_delay_s,
)
from training.synth.calibration import calibration_recording


def _recording(head_name: str, azimuth_deg: float, seed: int = 0) -> np.ndarray:
    return calibration_recording(head_name, azimuth_deg, seed=seed)


@pytest.mark.parametrize("azimuth", [60.0, 90.0, 120.0])
def test_kemar_table_is_kemar_under_the_estimator(azimuth):
    itd, clarity = interaural_delay_s(_recording("kemar-mit", azimuth, seed=5), 48_000)
    want = KEMAR_ITD_S[KEMAR_ITD_AZIMUTH_DEG.index(azimuth)]
    assert itd == pytest.approx(want, abs=1e-6) and clarity > 5
    # the right side mirrors the left
    assert interaural_delay_s(_recording("kemar-mit", -azimuth, seed=5), 48_000)[0] == pytest.approx(-want, abs=1e-6)


@pytest.mark.parametrize("scale,azimuth", [(0.86, 90.0), (1.2, 90.0), (1.12, 75.0), (1.2, -100.0), (1.0, 65.0)])
def test_a_scaled_kemar_is_measured_at_its_scale(scale, azimuth):
    name = "kemar-mit" if scale == 1.0 else f"kemar@{scale}"
    est = estimate_head_scale(_recording(name, azimuth, seed=3), 48_000, azimuth)
    assert est.head_scale == pytest.approx(scale, rel=0.03)


def test_bad_calibrations_say_what_was_expected():
    left = _recording("kemar-mit", 90.0)
    with pytest.raises(BinauraError, match="60..120 deg"):
        estimate_head_scale(left, 48_000, 20.0)
    with pytest.raises(BinauraError, match="channel order"):
        estimate_head_scale(left, 48_000, -90.0)
    with pytest.raises(AudioFormatError, match="too short"):
        estimate_head_scale(left[:, :4_800], 48_000, 90.0)
    # two unrelated noises (no one source) have no clear delay
    rng = np.random.default_rng(4)
    with pytest.raises(BinauraError, match="no clear interaural delay"):
        estimate_head_scale(left + 0.2 * rng.standard_normal(left.shape).astype(np.float32), 48_000, 90.0)


def test_calibrate_head_command_writes_the_estimate(tmp_path, capsys):
    from export.cli import main

    wav = tmp_path / "side.wav"
    sf.write(wav, _recording("kemar@1.2", 90.0).T, 48_000, subtype="PCM_16")
    out = tmp_path / "head.json"
    assert main(["calibrate", "head", "--audio", str(wav), "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["head_scale"] == pytest.approx(1.2, rel=0.03) and "encoder:scale=" in capsys.readouterr().out
    mono = tmp_path / "mono.wav"
    sf.write(mono, np.zeros(48_000, np.float32), 48_000)
    assert main(["calibrate", "head", "--audio", str(mono)]) == 2
    assert "expected 2 channels" in capsys.readouterr().err
