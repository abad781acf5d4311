"""The language-model half of the edge bundle on a tiny random Llama (issue 23): torch vs ONNX
fp32 vs int4 parity, the KV cache against a full recompute, streaming, sampling, and a
tampered or mismatched bundle refused with one message naming it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from agent.answer.bundle import MANIFEST, read_bundle
from agent.answer.decoder import GenerationConfig, OnnxDecoder, pick
from agent.core.errors import BinauraError
from export.bundle import build_llm_bundle, write_manifest
from export.llm_export import LlmExportConfig, quantize_int4
from export.llm_parity import CHAT_PROMPTS, PROGRAM_PROMPTS, decoder_file, parity
from tests.torchless import run_without_torch

PROMPTS = ("Where is the dog?", "The capital of France is", "How many sources are there?",
           "<|im_start|>user\nWhat do you hear?<|im_end|>\n<|im_start|>assistant\n")
#: int4 logit cosine floors on this tiny model (every prompt position; asymmetric, blocks of 32).
#: Measured 2026-12-01 (round to nearest): min 0.918, most 0.976-0.983. A random 64-wide model has no
#: dominant logit direction, so 4-bit noise shows far more than on SmolLM2 (docs/bundle.md:
#: 0.99+); the floors sit below the measured values by a margin for other CPUs' kernels, while
#: a broken quantizer (wrong block axis or scales) gives a cosine near 0.
INT4_COSINE_MIN, INT4_COSINE_MEAN = 0.85, 0.95


def _cos(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(hf folder, bundle folder, torch model): a random Llama of SmolLM2's shape (tied
    embeddings, grouped KV heads), hidden 64, 2 layers, the tiny ChatML tokenizer."""
    from transformers import AutoModelForCausalLM, LlamaConfig  # noqa: PLC0415

    from training.models.llm import load_base_llm  # noqa: PLC0415
    from training.models.tiny_tokenizer import build_tiny_tokenizer  # noqa: PLC0415

    root = tmp_path_factory.mktemp("llm")
    tok = build_tiny_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, initializer_range=0.1, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(root / "hf")
    tok.save_pretrained(root / "hf")
    build_llm_bundle(root / "bundle", base=str(root / "hf"), cfg=LlmExportConfig(embeddings_dtype="float32"))
    model, tok = load_base_llm(root / "hf")
    return root / "hf", root / "bundle", model


def _torch_greedy(model, ids, stop_ids, n):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, do_sample=False, eos_token_id=sorted(stop_ids), pad_token_id=0,
                             output_scores=True, return_dict_in_generate=True)
    tokens = out.sequences[0, len(ids):].tolist()
    if tokens and tokens[-1] in stop_ids:
        tokens = tokens[:-1]
    return tokens, [s[0].numpy() for s in out.scores]


def test_fp32_matches_torch(tiny):
    _, bundle, model = tiny
    dec = OnnxDecoder.from_bundle(bundle, "fp32")
    for text in PROMPTS:
        ids = dec.encode(text)
        g = dec.generate(dec.embed(ids), GenerationConfig(max_new_tokens=12), keep_logits=True)
        ref, scores = _torch_greedy(model, ids, dec.stop_ids, 12)
        assert g.tokens == ref, text
        assert min(_cos(a, b) for a, b in zip(g.logits, scores)) > 0.9999
        assert np.abs(g.logits[0] - scores[0]).max() < 1e-4  # same fp32 arithmetic, another order


def test_int4_close_to_torch(tiny):
    _, bundle, model = tiny
    dec = OnnxDecoder.from_bundle(bundle, "int4")
    agree, cosines = [], []
    for text in PROMPTS:
        ids = dec.encode(text)
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0].numpy()
        logits, _ = dec.forward(dec.embed(ids), dec.empty_cache())
        cosines += [_cos(a, b) for a, b in zip(logits, ref)]
        agree.append(np.mean(logits.argmax(-1) == ref.argmax(-1)))
    assert min(cosines) > INT4_COSINE_MIN and np.mean(cosines) > INT4_COSINE_MEAN, (min(cosines), np.mean(cosines))
    assert np.mean(agree) > 0.6, agree  # next-token agreement over every prompt position


#: int4 vs torch on program + chat prompts (export.llm_parity.parity: teacher-forced at every answer
#: position). Measured 2026-12-01 on this tiny model, 10 prompts, 8 tokens: GPTQ cosine mean
#: 0.977-0.987, min 0.939, top-1 0.72-0.79, KL 0.008-0.015 nats; RTN KL 0.020-0.025. The floors
#: leave room for other CPUs' kernels; the broken exports below fall far outside them.
PARITY_FLOORS = {"logit_cosine_mean": 0.95, "logit_cosine_min": 0.85, "top1_agreement": 0.6}
PARITY_KL_MAX = 0.035
PARITY_PROMPTS = PROGRAM_PROMPTS[:6] + CHAT_PROMPTS[:4]


def _within_floors(r: dict) -> bool:
    return all(r[k] >= v for k, v in PARITY_FLOORS.items()) and r["kl_mean"] <= PARITY_KL_MAX


def _rewrite_int4(src, dst, change) -> None:
    """A copy of an int4 decoder with change(node, {name: array}) applied to its MatMulNBits nodes."""
    import onnx  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    m = onnx.load(str(src))
    inits = {i.name: i for i in m.graph.initializer}
    for node in (n for n in m.graph.node if n.op_type == "MatMulNBits"):
        arrays = {k: numpy_helper.to_array(inits[k]) for k in node.input[1:] if k}
        for k, a in change(node, arrays).items():
            inits[k].CopyFrom(numpy_helper.from_array(a, k))
    onnx.save(m, str(dst))


@pytest.fixture(scope="module")
def int4_parity(tiny, tmp_path_factory):
    """{variant: parity against torch}: the bundle's int4 (GPTQ), round-to-nearest from the same
    fp32 graph, and two broken quantisations: lm_head rows reversed (a transposed or shared
    weight read in the wrong order) and every weight's 4-bit halves swapped (a packing bug)."""
    _, bundle, model = tiny
    root = tmp_path_factory.mktemp("int4")
    quantize_int4(bundle / "decoder_fp32.onnx", root / "rtn.onnx", LlmExportConfig(method="rtn"))

    def lm_head_reversed(node, arrays):
        return {k: a[::-1].copy() for k, a in arrays.items()} if "lm_head" in node.name else {}

    def nibbles_swapped(node, arrays):
        b = node.input[1]
        return {b: ((arrays[b] << 4) | (arrays[b] >> 4)).astype(np.uint8)}

    _rewrite_int4(bundle / "decoder_int4.onnx", root / "lm_head.onnx", lm_head_reversed)
    _rewrite_int4(bundle / "decoder_int4.onnx", root / "nibbles.onnx", nibbles_swapped)
    paths = {"gptq": bundle / "decoder_int4.onnx", "rtn": root / "rtn.onnx", "lm_head_reversed": root / "lm_head.onnx",
             "nibbles_swapped": root / "nibbles.onnx"}
    return {k: parity(decoder_file(bundle, p), model, PARITY_PROMPTS, max_new_tokens=8) for k, p in paths.items()}


def test_int4_parity_floors(int4_parity):
    r = int4_parity["gptq"]
    assert _within_floors(r), r
    assert r["positions"] >= 5 * len(PARITY_PROMPTS)


def test_int4_gptq_closer_than_round_to_nearest(int4_parity):
    gptq, rtn = int4_parity["gptq"], int4_parity["rtn"]
    assert gptq["kl_mean"] < 0.8 * rtn["kl_mean"], (gptq, rtn)
    assert gptq["logit_cosine_mean"] > rtn["logit_cosine_mean"], (gptq, rtn)


@pytest.mark.parametrize("broken", ["lm_head_reversed", "nibbles_swapped"])
def test_broken_int4_fails_the_floors(int4_parity, broken):
    assert not _within_floors(int4_parity[broken]), int4_parity[broken]


def test_int4_is_smaller(tiny):
    _, bundle, _ = tiny
    files = json.loads((bundle / MANIFEST).read_text())["files"]
    assert files["decoder_int4.onnx"]["bytes"] < 0.5 * files["decoder_fp32.onnx"]["bytes"]


def test_kv_cache_equals_full_recompute(tiny):
    _, bundle, _ = tiny
    dec = OnnxDecoder.from_bundle(bundle, "fp32")
    ids = dec.encode(PROMPTS[0])
    g = dec.generate(dec.embed(ids), GenerationConfig(max_new_tokens=8), keep_logits=True)
    seq = list(ids)
    for tok, cached in zip(g.tokens, g.logits):
        full, _ = dec.forward(dec.embed(seq), dec.empty_cache())  # no cache: the whole sequence again
        assert np.abs(full[-1] - cached).max() < 1e-4
        assert int(full[-1].argmax()) == tok
        seq.append(tok)


def test_audio_rows_replace_placeholders(tiny):
    _, bundle, _ = tiny
    dec = OnnxDecoder.from_bundle(bundle, "fp32")
    audio = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    ids, mask, emb = dec.prompt("Where", audio, " is the dog?")
    assert ids.count(dec.placeholder_id) == 3 and sum(mask) == 3
    np.testing.assert_array_equal(emb[np.asarray(mask)], audio)
    np.testing.assert_array_equal(emb[~np.asarray(mask)], dec.embeddings[np.asarray(ids)[~np.asarray(mask)]])
    with pytest.raises(BinauraError, match="3 audio positions"):
        dec.embed(ids, mask, audio[:2])


def test_streaming_callback_sees_the_text(tiny):
    _, bundle, _ = tiny
    dec = OnnxDecoder.from_bundle(bundle, "int4")
    seen = []
    g = dec.generate(dec.embed(dec.encode(PROMPTS[1])), GenerationConfig(max_new_tokens=10),
                     on_token=lambda t, s: seen.append((t, s)))
    assert [t for t, _ in seen if t >= 0] == g.tokens
    assert "".join(s for _, s in seen) == g.text
    assert g.stop_reason in ("stop", "length") and len(g.tokens) <= 10


def test_sampling_seeded_and_nucleus():
    rng = np.random.default_rng
    logits = np.array([3.0, 2.9, 0.0, -1.0, -5.0])
    assert pick(logits, 0.0, 1.0, rng(0)) == 0
    draws = [pick(logits, 1.0, 0.6, rng(s)) for s in range(200)]
    assert set(draws) == {0, 1}  # p = 0.49, 0.44, ...: the nucleus of 0.6 holds two tokens
    assert [pick(logits, 0.7, 0.9, rng(5)) for _ in range(3)] == [pick(logits, 0.7, 0.9, rng(5)) for _ in range(3)]


def test_sampled_generation_repeats_with_a_seed(tiny):
    _, bundle, _ = tiny
    dec = OnnxDecoder.from_bundle(bundle, "fp32")
    emb = dec.embed(dec.encode(PROMPTS[2]))
    cfg = GenerationConfig(max_new_tokens=8, temperature=0.8, top_p=0.9, seed=7)
    assert dec.generate(emb, cfg).tokens == dec.generate(emb, cfg).tokens
    with pytest.raises(BinauraError, match="top_p"):
        GenerationConfig(top_p=0.0)


def _copy(bundle, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(bundle, dst)
    return dst


def test_tampered_truncated_missing_refused(tiny, tmp_path):
    _, bundle, _ = tiny
    b = _copy(bundle, tmp_path)
    emb = np.load(b / "embed_tokens.npy")
    emb[5, 0] += 1.0
    np.save(b / "embed_tokens.npy", emb)
    with pytest.raises(BinauraError, match=r"embed_tokens.npy: SHA-256 does not match"):
        OnnxDecoder.from_bundle(b, "int4")
    data = (b / "decoder_int4.onnx").read_bytes()
    (b / "decoder_int4.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BinauraError, match=r"decoder_int4.onnx: \d+ bytes, the manifest says"):
        read_bundle(b)
    (b / "tokenizer.json").unlink()
    with pytest.raises(BinauraError, match="tokenizer.json is missing"):
        read_bundle(b)


def test_newer_format_and_other_template_refused(tiny, tmp_path):
    _, bundle, _ = tiny
    b = _copy(bundle, tmp_path)
    m = json.loads((b / MANIFEST).read_text())
    (b / MANIFEST).write_text(json.dumps({**m, "format_version": m["format_version"] + 1}))
    with pytest.raises(BinauraError, match="format_version 2 is newer"):
        read_bundle(b)
    (b / MANIFEST).write_text(json.dumps({**m, "prompt_template": "binaura-prompt-v0"}))
    with pytest.raises(BinauraError, match="prompt_template: the bundle was built for 'binaura-prompt-v0'"):
        read_bundle(b)


def test_tokenizer_of_another_model_refused(tiny, tmp_path):
    """A consistent manifest (checksums rewritten) whose tokenizer is not the decoder's."""
    from training.models.tiny_tokenizer import build_tiny_tokenizer  # noqa: PLC0415

    _, bundle, _ = tiny
    b = _copy(bundle, tmp_path)
    build_tiny_tokenizer(vocab_size=512).backend_tokenizer.save(str(b / "tokenizer.json"))
    m = json.loads((b / MANIFEST).read_text())
    keep = {k: m[k] for k in ("llm",)}
    write_manifest(b, keep)
    with pytest.raises(BinauraError, match=r"tokenizer.json: the tokenizer has \d+ tokens; the decoder's embedding table has"):
        read_bundle(b)


BLOCKED = """
from agent.answer.decoder import OnnxDecoder, GenerationConfig
d = OnnxDecoder.from_bundle(sys.argv[1], 'int4')
g = d.generate(d.embed(d.encode('Where is the dog?')), GenerationConfig(max_new_tokens=4))
print(len(g.tokens) + (g.stop_reason == 'stop'))
"""


def test_runtime_without_torch(tiny):
    _, bundle, _ = tiny
    res = run_without_torch(BLOCKED, bundle)
    assert res.returncode == 0, res.stderr
    assert 1 <= int(res.stdout.strip()) <= 4
