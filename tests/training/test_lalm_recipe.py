"""The curriculum's recipe end to end on a tiny dataset: encoder-output cache, align, SFT, resume."""

import json

import numpy as np
import pytest

from agent.core.dataset import read_dataset
from agent.core.errors import BinauraError
from training.models.lalm import LalmConfig, load_lalm
from training.models.llm import save_tiny_llm
from training.models.projector import ProjectorConfig
from training.recipes.lalm import LalmTrainConfig, train_lalm
from training.recipes.lalm_cache import EncoderCache, build_encoder_cache
from training.recipes.lalm_data import build_examples, describe
from training.synth.build import build_dataset
from training.synth.config import SynthConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("lalm-recipe")
    cfg = SynthConfig(duration_s=1.0, event_duration_s=(0.5, 1.0), rt60_s=(0.2, 0.3)).validate()
    build_dataset(d / "ds", cfg, 6, seed=4, workers=1, progress=False)
    build_encoder_cache(d / "ds", d / "cache", progress=False)
    return d


def test_the_cache_holds_what_the_shipped_onnx_encoder_hears(data):
    """Training sees the embeddings the agent's runtime computes (fp16 storage: 1e-2 relative)."""
    from agent.core.seld import seld_vector
    from agent.localize.encoder import EncoderRuntime

    cache = EncoderCache.open(data / "cache")
    ds = read_dataset(data / "ds")
    rt = EncoderRuntime()  # as the agent runs it (mirror averaging from the manifest)
    assert cache.meta["mirror_tta"] == rt.mirror_tta and cache.meta["audio_input"] == "binaural"
    for i in (0, 5):
        f = rt.run_audio(*ds.load_audio(ds.scenes[i]))
        want = (f.spatial_emb, f.semantic_emb, seld_vector(f.accdoa, f.log_distance, f.class_logits))
        for got, ref in zip(cache.clip(cache.index[ds.scenes[i].id]), want, strict=True):
            assert got.shape == ref.shape
            assert np.abs(got - ref).max() <= 1e-2 * max(1.0, np.abs(ref).max())


def test_examples_of_each_stage(data):
    cache, ds = EncoderCache.open(data / "cache"), read_dataset(data / "ds")
    align = build_examples(ds, cache, "align")
    assert len(align) == 6 and align[0].target == describe(ds.scenes[0].sources)
    assert align[0].target.startswith("I hear ")
    sft = build_examples(ds, cache, "sft", heard=True)
    assert len(sft) == len(ds.qa) and all(e.context.startswith("Heard: ") for e in sft)
    letters = [e for e in sft if e.options]
    assert letters and all(e.target[:3] in ("A. ", "B. ", "C. ", "D. ") for e in letters)


def test_align_then_sft_then_resume(data, tmp_path):
    base = save_tiny_llm(tmp_path / "tiny")
    mc = LalmConfig(base=str(base), projector=ProjectorConfig(n_tokens=4, d_model=16), lora_r=4)
    align = train_lalm(data / "ds", data / "cache", tmp_path / "align",
                       LalmTrainConfig(stage="align", steps=2, batch_size=2, eval_every=2, val_clips=2), mc,
                       progress=False)
    a_model, a_meta = load_lalm(align)
    assert a_meta["stage"] == "align" and a_model.cfg.lora_r == 0  # the projector alone
    sft_cfg = LalmTrainConfig(stage="sft", steps=2, batch_size=2, eval_every=2, val_clips=2)
    sft = train_lalm(data / "ds", data / "cache", tmp_path / "sft", sft_cfg, mc, init=align, progress=False)
    model, meta = load_lalm(sft)
    assert meta["lineage"] == ["align"] and model.cfg.lora_r == 4
    assert meta["encoder_checkpoint_sha256"] == EncoderCache.open(data / "cache").meta["encoder_checkpoint_sha256"]
    assert (tmp_path / "sft" / "loss.png").stat().st_size > 1000
    # resumable: the same run continued to more steps
    train_lalm(data / "ds", data / "cache", tmp_path / "sft", LalmTrainConfig(
        stage="sft", steps=4, batch_size=2, eval_every=2, val_clips=2), mc, init=align, resume=True, progress=False)
    steps = [h["step"] for h in json.loads((tmp_path / "sft" / "history.json").read_text())]
    assert max(steps) == 4
    with pytest.raises(BinauraError, match="mono"):
        train_lalm(data / "ds", data / "cache", tmp_path / "x", sft_cfg,
                   LalmConfig(base=str(base), audio_input="mono"), progress=False)


def test_sft_runs_unchanged_under_accelerate_launch_with_two_processes(data, tmp_path):
    """How a GPU cluster scales the recipe out: the same command under `accelerate launch`,
    here two CPU processes (gloo; `--multi_gpu` is accelerate's torchrun-style launcher, and
    with no GPU each rank trains on the CPU; `--cpu` would start a single process); one model
    folder comes out, trained over both ranks' batches."""
    import os
    import sys
    from pathlib import Path

    from .launch import free_port, run_group

    base = save_tiny_llm(tmp_path / "tiny")
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()), "-m", "export.cli", "train", "sft", "--data", str(data / "ds"), "--cache",
           str(data / "cache"), "--base", str(base), "--tokens", "4", "--lora-r", "2", "--steps", "2",
           "--batch-size", "2", "--eval-every", "2", "--val-clips", "1", "--out", str(tmp_path / "run"), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = run_group(cmd, 600, env)
    assert run.returncode == 0, run.stderr[-3000:]
    model, meta = load_lalm(tmp_path / "run" / "model")
    assert meta["stage"] == "sft" and model.cfg.lora_r == 2 and meta["world_size"] == 2
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert max(h["step"] for h in hist) == 2
