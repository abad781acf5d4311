"""The language model as the live agent's answerer: it reads the pipeline's own encoder frames
(no second encoder pass) and streams the same answer that batch generation gives."""

import numpy as np
import pytest
import torch

from agent.capture.block import PcmBlock
from agent.localize.encoder import EncoderRuntime
from agent.pipeline import Pipeline
from training.eval.live_lalm import LiveLalmAnswerer
from training.models.lalm import LalmConfig, SpatialLALM, save_lalm
from training.models.llm import lalm_tiny_base
from training.models.projector import ProjectorConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("live")
    rt = EncoderRuntime()
    torch.manual_seed(0)
    llm, tok = lalm_tiny_base(d)
    labels = len(rt.labels)
    proj = ProjectorConfig(n_tokens=4, d_model=16, spatial_dim=256, semantic_dim=192, seld_dim=labels * 5)
    model = SpatialLALM(llm, tok, LalmConfig(base=str(d / "tiny-llama"), projector=proj, lora_r=4, heard_line=True))
    save_lalm(model, d / "model", stage="sft", labels=list(rt.labels))
    pipe = Pipeline(rt)
    rng = np.random.default_rng(3)
    for k in range(30):  # 3 s of noise, louder on the left
        x = rng.standard_normal((2, 4800)).astype(np.float32) * np.array([[0.2], [0.05]], np.float32)
        pipe.process(PcmBlock(k * 0.1, 48_000, x))
    return LiveLalmAnswerer(d / "model", max_new_tokens=8), pipe


def test_the_answer_streams_in_chunks_equal_to_batch_generation(setup):
    ans, pipe = setup
    chunks = list(ans("Where is the dog?", pipe))
    assert len(chunks) >= 1
    item = ans.inputs("Where is the dog?", pipe)
    whole = ans.model.generate([item], max_new_tokens=8)[0]
    assert "".join(chunks).strip() == whole


def test_the_inputs_are_the_pipelines_recent_frames_and_its_heard_line(setup):
    ans, pipe = setup
    item = ans.inputs("What do you hear?", pipe)
    frames = pipe.recent_frames(ans.window_s)
    assert item["spatial"].shape == (frames.n, 256) and np.array_equal(item["spatial"], frames.spatial_emb)
    text = ans.model.tokenizer.decode(item["input_ids"])
    assert "Heard: " in text and "What do you hear?" in text


def test_a_caller_that_stops_early_leaves_nothing_running(setup):
    ans, pipe = setup
    chunks = ans("Where is the dog?", pipe)
    next(chunks)
    chunks.close()  # the model finishes, its thread ends, the lock is free for the next question
    assert "".join(ans("Where is the dog?", pipe))
