"""The agent and the firmware bridge must import without torch (ARCHITECTURE.md)."""

from tests.torchless import run_without_torch

BLOCK = """
import agent.core.audio, agent.core.geometry, agent.core.labels, agent.core.scene
import agent.core.dataset, agent.core.predictor, agent.localize.gccphat, firmware_bridge
import agent.core.features, agent.core.seld, agent.localize.encoder, agent.localize.long_clip, agent.localize.relabel
import agent.core.prompt, agent.core.outdir, agent.core.digest, agent.track, agent.track.tracker, agent.track.events
import agent.capture, agent.narrate, agent.serve, agent.voice, agent.answer.tracks, agent.pipeline, agent.run
import agent.console, agent.qa.programs, agent.answer.programs, agent.answer.hearing, agent.answer.bundle_answerer
import numpy as np
from agent.core.predictor import Clip
from agent.localize.encoder import EncoderLocalizer
audio = (np.random.default_rng(0).standard_normal((2, 48000)) * 0.05).astype(np.float32)
EncoderLocalizer().localize(Clip('x', audio, 48000))  # the shipped ONNX encoder, end to end
print('ok')
"""


def test_agent_imports_without_torch():
    res = run_without_torch(BLOCK)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
