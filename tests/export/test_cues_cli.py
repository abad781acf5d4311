"""`binaura ask` and `binaura listen` say when their input cannot carry front/back or
elevation cues (agent/core/cues.py): a benchmark scene at 48 kHz, the same scene as a 16 kHz
board records it, and as that board's recording upsampled to 48 kHz before it reached binaura."""

import json

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from agent.core.cues import rate_limits
from agent.track.events import check_event
from export.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """{"full": 48 kHz, "16k": 16 kHz, "up": 16 kHz upsampled to 48 kHz}: benchmark scene
    s000000 (preset bench, seed 20261126: a siren, water and speech), its first 3 s, 16-bit."""
    from training.synth.config import preset
    from training.synth.scenes import render_scene, sample_spec

    cfg = preset("bench")
    audio, _ = render_scene(sample_spec(cfg, 20261126, 0), cfg)
    x = audio[:, :3 * 48_000].astype(np.float64)
    x16 = resample_poly(x, 1, 3, axis=-1)
    root = tmp_path_factory.mktemp("cues")
    out = {}
    for name, y, rate in (("full", x, 48_000), ("16k", x16, 16_000), ("up", resample_poly(x16, 3, 1, axis=-1), 48_000)):
        out[name] = root / f"{name}.wav"
        sf.write(out[name], y.T, rate, subtype="PCM_16")
    return out


@pytest.fixture
def tracks_answerer(monkeypatch):
    """`ask` without a language model: no program is written, so every question gets the
    tracks' answer over what the shipped encoder heard (torch-free, nothing downloaded)."""
    from agent.answer.hearing import encoder_hearing
    from agent.answer.programs import ProgramAnswering, tracks_reply
    from export import lalm_cli

    class NoPrograms(ProgramAnswering):
        def write_programs(self, questions):
            return ["" for _ in questions]

    hear = encoder_hearing()
    answerer = NoPrograms(hear, "tracks", fallback=tracks_reply)
    monkeypatch.setattr(lalm_cli, "_default_answerer", lambda args: (answerer, hear.sample_rate_hz, "tracks (test)"))


def test_ask_on_a_16_khz_recording_says_front_back_is_not_reliable(wavs, tracks_answerer, capsys):
    assert main(["ask", "--audio", str(wavs["16k"]), "--json", "Where is the siren?"]) == 0
    out, err = capsys.readouterr()
    cues = json.loads(out)["cues"]
    assert cues == rate_limits(16_000).to_json() and cues["front_back"] is False and cues["bandwidth_hz"] == 8000
    assert "resampled to 48000 Hz" in err  # the existing line stays
    assert main(["ask", "--audio", str(wavs["16k"]), "Where is the siren?"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0] and "Note:" not in lines[0]
    assert lines[1] == ("Note: this recording carries no sound above 8 kHz, so I can't reliably tell front "
                        "from back or up from down.")


def test_ask_catches_an_upsampled_recording_and_passes_a_full_band_one(wavs, tracks_answerer, capsys):
    assert main(["ask", "--audio", str(wavs["up"]), "--json", "Where is the siren?"]) == 0
    out, err = capsys.readouterr()
    cues = json.loads(out)["cues"]
    assert cues["front_back"] is False and cues["elevation"] is False and cues["bandwidth_hz"] <= 10_000
    assert "resampled" not in err  # its header says 48 kHz: only its content gives it away
    assert main(["ask", "--audio", str(wavs["full"]), "--json", "Where is the siren?"]) == 0
    assert json.loads(capsys.readouterr().out)["cues"] == {"front_back": True, "elevation": True,
                                                           "bandwidth_hz": 24000, "reason": None}
    assert main(["ask", "--audio", str(wavs["full"]), "Where is the siren?"]) == 0
    assert "Note:" not in capsys.readouterr().out


def _listen(wav, capsys):
    assert main(["listen", "--source", f"wav:{wav}", "--fast", "--events", "-", "--quiet", "--narration", "off",
                 "--ask", "Where is the siren?"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events and all(not check_event(e) for e in events)
    warnings = [e for e in events if e["type"] == "warning" and e["cues"] is not None]
    answers = [e for e in events if e["type"] == "answer"]
    assert len(answers) == 1
    return warnings, answers[0]


@pytest.mark.parametrize("name", ["16k", "up"])
def test_listen_warns_once_on_a_band_limited_source_and_its_answers_say_so(wavs, capsys, name):
    warnings, answer = _listen(wavs[name], capsys)
    assert len(warnings) == 1
    w = warnings[0]
    assert w["cues"]["front_back"] is False and w["cues"]["elevation"] is False
    assert w["text"].startswith("Front/back and elevation are not reliable")
    assert answer["cues"] == w["cues"]
    if name == "16k":
        assert w["t_s"] <= 0.2 and w["cues"]["bandwidth_hz"] == 8000  # the rate decides at the first block
    else:
        assert w["cues"]["bandwidth_hz"] <= 10_000  # judged on the content (here at the end: 3 s < 5 s)


def test_listen_does_not_warn_on_a_full_band_source(wavs, capsys):
    warnings, answer = _listen(wavs["full"], capsys)
    assert warnings == [] and answer["cues"]["front_back"] is True and answer["cues"]["reason"] is None


def test_answers_through_the_api_carry_the_cues_too():
    from agent.serve import Hub

    hub = Hub()
    hub.set_asker(lambda q: iter(["The siren is ", "behind you."]), cues=lambda: rate_limits(16_000))
    d = hub.ask("Where is the siren?").to_json()
    assert d["cues"]["front_back"] is False and not check_event(d)
    hub.set_asker(lambda q: iter(["x"]))
    assert hub.ask("Where?").to_json()["cues"] is None
