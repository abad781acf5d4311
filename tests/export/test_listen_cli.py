"""`binaura listen` and `binaura bench agent` end to end through the command line."""

import json
import socket

import numpy as np
import pytest
import soundfile as sf

from agent.track.events import check_event
from export.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def left_dog_wav(tmp_path_factory):
    """A 4 s anechoic binaural wav at 44.1 kHz (not the model's rate): a dog 90 deg to the left."""
    import dataclasses

    from agent.core.audio import resample_to
    from training.synth.config import preset
    from training.synth.scenes import SourceSpec, render_scene, sample_spec

    cfg = preset("demo")
    spec = dataclasses.replace(sample_spec(cfg, 5, 0), room=None,
                               sources=[SourceSpec("dog", 90.0, 0.0, 2.0, 0.3, 3.7, 0.0, 11)])
    audio, _ = render_scene(spec, cfg)
    path = tmp_path_factory.mktemp("listen") / "dog.wav"
    sf.write(path, resample_to(audio[:, :4 * 48_000], 48_000, 44_100).T, 44_100, subtype="FLOAT")
    return path


def test_listen_to_a_file_writes_schema_events_to_stdout_and_a_summary(left_dog_wav, capsys):
    assert main(["listen", "--source", f"wav:{left_dog_wav}", "--fast", "--events", "-", "--summary",
                 "--ask", "Where is the dog?", "--narration", "clock"]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]  # stdout holds only the JSON Lines
    assert events and all(not check_event(e) for e in events)
    onset = [e for e in events if e["type"] == "onset"]
    assert [e["label"] for e in onset] == ["dog"] and 60 <= onset[0]["azimuth_deg"] <= 120
    assert any(e["type"] == "narration" and any(f"{h} o'clock" in e["text"] for h in (8, 9, 10)) for e in events)
    answer = [e for e in events if e["type"] == "answer"]
    assert len(answer) == 1 and "to your left" in answer[0]["text"]
    health = [e for e in events if e["type"] == "health"]
    assert health and health[-1]["counters"]["lost_s"] == 0 and health[-1]["counters"]["blocks"] == 40
    assert "1 source track(s)" in err and "the dog" in err  # the console went to stderr


def test_listen_refuses_bad_sources_with_one_clear_error(tmp_path, capsys):
    assert main(["listen", "--source", "radio:fm", "--fast"]) == 2
    assert "radio:fm" in capsys.readouterr().err
    assert main(["listen", "--source", f"wav:{tmp_path / 'missing.wav'}", "--fast"]) == 2
    assert "missing.wav" in capsys.readouterr().err
    mono = tmp_path / "mono.wav"
    sf.write(mono, np.zeros(16_000, np.float32), 16_000)
    assert main(["listen", "--source", f"wav:{mono}", "--fast"]) == 2
    assert "2 channels" in capsys.readouterr().err or "channel" in capsys.readouterr().err
    assert main(["listen", "--source", "scene:demo", "--encoder", str(tmp_path), "--fast"]) == 2
    assert "encoder" in capsys.readouterr().err
    assert main(["listen", "--source", "scene:demo", "--fast", "--orientation", "api"]) == 2
    assert "--serve" in capsys.readouterr().err  # the API is where the updates come in


def test_listen_refuses_a_port_in_use(left_dog_wav, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["listen", "--source", f"wav:{left_dog_wav}", "--fast", "--serve", str(port)]) == 2
    assert str(port) in capsys.readouterr().err


def test_bench_agent_scores_tracks_against_the_truth(tmp_path, capsys):
    data = tmp_path / "ds"
    assert main(["synth", "--out", str(data), "--scenes", "3", "--seed", "20261126", "--preset", "bench",
                 "--workers", "1", "--quiet"]) == 0
    out = tmp_path / "agent.json"
    assert main(["bench", "agent", "--data", str(data), "--scenes", "3", "--model", "tracks", "--out", str(out),
                 "--quiet"]) == 0
    m = json.loads(out.read_text())
    assert m["scenes"] == 3 and m["sources"] >= 3
    assert 0.2 <= m["coverage_20deg"] <= 1.0 and 0.0 <= m["raw_coverage_20deg"] <= 1.0
    assert m["onset_latency_p50_s"] is None or 0.2 <= m["onset_latency_p50_s"] <= 3.0  # encoder look-ahead 0.44 s
    assert m["first_token_p95_s"] is not None and "| id switches per source-minute |" in capsys.readouterr().out


def test_a_spoken_question_is_heard_and_answered_from_the_tracks(left_dog_wav, tmp_path, capsys):
    """--voice: the dog barks on the left, then someone ahead asks "Where is the dog?" aloud."""
    from agent.core.audio import resample_to
    from tests.agent.test_voice_vad import espeak

    dog, rate = sf.read(left_dog_wav, dtype="float32")
    dog = resample_to(dog.T, rate, 48_000)
    speech = espeak("Where is the dog?", 48_000, words_per_min=140) * 0.3
    gap = np.zeros(int(0.3 * 48_000), np.float32)
    question = np.concatenate([gap, speech, gap, gap, gap])
    audio = np.concatenate([dog, np.stack([question, question])], axis=1)  # ahead: equal in both ears
    path = tmp_path / "ask.wav"
    sf.write(path, audio.T, 48_000, subtype="FLOAT")
    events_path = tmp_path / "ev.jsonl"
    assert main(["listen", "--source", f"wav:{path}", "--fast", "--voice", "--events", str(events_path),
                 "--narration", "off"]) == 0
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    answers = [e for e in events if e["type"] == "answer"]
    assert len(answers) == 1, answers
    assert "dog" in answers[0]["question"].lower() and "to your left" in answers[0]["text"]
    health = [e for e in events if e["type"] == "health"][-1]["counters"]
    assert health["voice_asr_runs"] >= 1 and health["voice_dropped_blocks"] == 0


def test_ctrl_c_ends_every_track_and_flushes_the_events(left_dog_wav, tmp_path):
    """A paced run interrupted mid-sound: exit 0, the dog's onset has its offset, a last health event."""
    import signal
    import subprocess
    import sys
    import time

    events_path = tmp_path / "ev.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "export.cli", "listen", "--source", f"wav:{left_dog_wav}",
                             "--events", str(events_path), "--narration", "off"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the dog's onset, then interrupt
            if events_path.exists() and '"onset"' in events_path.read_text():
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.count("onset") == 1 and kinds.count("offset") == 1 and kinds[-1] == "health"
    off = next(e for e in events if e["type"] == "offset")
    assert off["t_s"] < 3.5  # interrupted before the file's end (4 s): the offset came from the shutdown


def test_listen_takes_the_head_orientation_from_a_bridge_device(capsys):
    """--orientation bridge: the emulated board streams its head's quaternions beside the
    audio; every one is taken on the stream clock (none refused as out of order or from the
    future, though the encoder's frames trail the audio by half a second) and the tracks
    are in the world frame."""
    import math

    from firmware_bridge.emulator import DeviceEmulator, FaultConfig, UdpLink
    from firmware_bridge.protocol import F32

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    x = np.random.default_rng(1).uniform(-0.05, 0.05, (48_000, 2)).astype(np.float32)
    emu = DeviceEmulator(x, 48_000, 480, sample_format=F32, loop=True, hello_s=0.2,
                         orientation=lambda t: (math.cos(0.2 * t), 0.0, 0.0, math.sin(0.2 * t)))  # 23 deg/s left
    link = UdpLink(emu, "127.0.0.1", port, FaultConfig(), speed=2.0).start()
    try:
        assert main(["listen", "--source", f"bridge:udp://127.0.0.1:{port}", "--orientation", "bridge",
                     "--duration", "3", "--events", "-", "--quiet", "--narration", "off"]) == 0
    finally:
        link.stop()
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    c = [e for e in events if e["type"] == "health"][-1]["counters"]
    assert c["orientation_samples"] >= 100 and c["orientation_refused"] == 0, c  # 50 Hz over 3 s
    assert c["orientation_placed"] >= c["orientation_samples"] and c["orientation_invalid"] == 0
    assert c["orientation_world_frame"] == 1 and c["orientation_fallbacks"] == 0
    assert not [e for e in events if e["type"] == "warning"]


def test_listen_refuses_bridge_orientation_without_a_bridge_source(tmp_path, capsys):
    path = tmp_path / "still.wav"
    sf.write(path, np.zeros((16_000, 2), np.float32), 16_000)
    assert main(["listen", "--source", f"wav:{path}", "--fast", "--orientation", "bridge"]) == 2
    err = capsys.readouterr().err
    assert "--orientation bridge" in err and "bridge:URI" in err and "still.wav" in err
