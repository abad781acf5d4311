"""`--source SPEC` -> the right source, and every refusal names the accepted forms."""

import numpy as np
import pytest
import soundfile as sf

from agent.capture import ArraySource, BridgeAudioSource, WavSource, open_source
from agent.core.errors import BinauraError

FORMS = "expected one of: mic, mic:DEVICE (index or part of its name), wav:PATH, bridge:URI"


@pytest.fixture()
def wav(tmp_path):
    path = tmp_path / "a b.wav"  # a space in the path survives the parsing
    sf.write(path, np.zeros((4_800, 2), np.float32), 48_000)
    return path


def test_wav_is_paced_unless_fast(wav):
    src = open_source(f"wav:{wav}")
    assert isinstance(src, WavSource) and src.paced and src.live and src.path == wav
    fast = open_source(f"wav:{wav}", fast=True, block_s=0.05)
    assert not fast.paced and not fast.live and fast.block_samples == 2_400


def test_scene_needs_the_callers_hook():
    with pytest.raises(BinauraError, match="a scene must be synthesized by the caller") as e:
        open_source("scene:demo")
    assert FORMS in str(e.value)
    asked = []

    def synth(name):
        asked.append(name)
        return np.zeros((2, 16_000), np.float32), 16_000

    src = open_source("scene:demo", fast=True, scenes=synth)
    assert isinstance(src, ArraySource) and asked == ["demo"] and src.name == "scene:demo" and not src.paced
    assert sum(b.n for b in src.blocks()) == 16_000


def test_bridge_uri_goes_to_the_bridges_own_parser():
    src = open_source("bridge:udp://127.0.0.1:0")
    try:
        assert isinstance(src, BridgeAudioSource) and src.local_address[0] == "127.0.0.1"
    finally:
        src.close()
    with pytest.raises(BinauraError, match="unknown transport 'tcp'"):
        open_source("bridge:tcp://127.0.0.1:5005")


@pytest.mark.parametrize("spec,problem", [
    ("", "no source given"),
    ("speaker", "unknown source kind 'speaker'"),
    ("http://x", "unknown source kind 'http'"),
    ("song.wav", "unknown source kind 'song.wav' (a file? write wav:song.wav)"),
    ("mic:", "mic: names no device (drop the colon for the default device)"),
    ("wav:", "wav: names no file"),
    ("scene:", "scene: names no scene"),
])
def test_refusals_name_the_problem_and_the_forms(spec, problem):
    with pytest.raises(BinauraError) as e:
        open_source(spec)
    assert problem in str(e.value) and FORMS in str(e.value)


def test_a_missing_wav_and_an_unknown_mic_are_refused_by_their_sources(tmp_path):
    with pytest.raises(BinauraError, match="nope.wav: audio file is missing"):
        open_source(f"wav:{tmp_path / 'nope.wav'}")
    with pytest.raises(BinauraError, match="no input device matches 'no-such-mic-xyz'"):
        open_source("mic:no-such-mic-xyz")  # PortAudio's real device list, whatever it holds
