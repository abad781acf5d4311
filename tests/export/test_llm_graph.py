"""The decoder graph written straight from the weights (export/llm_graph.py): the same logits as
torch at every position, prompt in one piece or in chunks through the cache, Llama and Qwen2;
4-bit nodes that compute exactly their dequantised weights; other models fall back to torch's
exporter and say why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.llm_graph import DecoderBuilder, unsupported
from export.llm_quant import block_quantize, gptq

IDS = [5, 9, 14, 3, 22, 7, 11, 30, 2]


def _tiny(tmp_path, arch: str, head_dim: int = 16):
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    from training.models.llm import save_tiny_llm  # noqa: PLC0415

    return AutoModelForCausalLM.from_pretrained(save_tiny_llm(tmp_path / arch, arch, seed=2, head_dim=head_dim)).eval()


def _session(model_proto):
    import onnxruntime as ort  # noqa: PLC0415

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model_proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _run(sess, llm, embeds, cache):
    """logits (S, vocab), new cache: the feed agent/answer/decoder.py sends."""
    past, s = cache[0].shape[2], embeds.shape[1]
    feed = {"inputs_embeds": embeds, "attention_mask": np.ones((1, past + s), np.int64)}
    for i in range(llm.config.num_hidden_layers):
        feed[f"past_key_values.{i}.key"], feed[f"past_key_values.{i}.value"] = cache[2 * i], cache[2 * i + 1]
    out = sess.run(None, feed)
    return out[0][0], out[1:]


def _empty(llm):
    c = llm.config
    return [np.zeros((1, c.num_key_value_heads, 0, c.hidden_size // c.num_attention_heads), np.float32)
            for _ in range(2 * c.num_hidden_layers)]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])  # tied head; untied head with q/k/v biases
def test_fp32_graph_gives_torch_logits_whole_or_through_the_cache(tmp_path, arch):
    llm = _tiny(tmp_path, arch)
    assert unsupported(llm) is None
    sess = _session(DecoderBuilder(llm).build())
    with torch.no_grad():
        ref = llm(torch.tensor([IDS])).logits[0].numpy()
        emb = llm.get_input_embeddings()(torch.tensor([IDS])).numpy()
    whole, cache = _run(sess, llm, emb, _empty(llm))
    assert np.abs(whole - ref).max() < 1e-4
    assert cache[0].shape[2] == len(IDS)  # the present cache holds every position
    pieces, cache = [], _empty(llm)
    for a, b in ((0, 4), (4, 5), (5, len(IDS))):  # a chunked prompt, then one token at a time
        logits, cache = _run(sess, llm, emb[:, a:b], cache)
        pieces.append(logits)
    assert np.abs(np.concatenate(pieces) - whole).max() < 1e-5


def test_gptq_with_uncorrelated_inputs_is_round_to_nearest():
    """An identity Hessian gives GPTQ nothing to compensate with: its values are plain rounding."""
    w = torch.randn(24, 64, generator=torch.Generator().manual_seed(0))
    q, s, z = gptq(w, torch.eye(64, dtype=torch.float64))
    rq, rs, rz = block_quantize(w.numpy(), 32, False)
    assert (q == rq).all() and np.allclose(s, rs) and (z == rz).all()


def test_int4_nodes_compute_their_dequantised_weights(tmp_path):
    """The int4 graph (exact kernel, accuracy_level 0) equals the fp32 graph of the model with
    every linear replaced by its dequantised 4-bit values: nibble order, block axis, scales and
    zero points are laid out as MatMulNBits reads them."""
    llm = _tiny(tmp_path, "llama")
    int4 = _session(DecoderBuilder(llm, lambda _src, w: block_quantize(w, 32, False), accuracy_level=0).build())
    with torch.no_grad():
        for mod in llm.modules():
            if isinstance(mod, torch.nn.Linear):
                q, s, z = block_quantize(mod.weight.numpy(), 32, False)
                deq = (q.astype(np.float32) - np.repeat(z, 32, 1)) * np.repeat(s, 32, 1)
                mod.weight.copy_(torch.from_numpy(deq))
        emb = llm.get_input_embeddings()(torch.tensor([IDS])).numpy()
    fp32 = _session(DecoderBuilder(llm).build())
    a, _ = _run(int4, llm, emb, _empty(llm))
    b, _ = _run(fp32, llm, emb, _empty(llm))
    assert np.abs(a - b).max() < 1e-3 * np.abs(b).max()


def test_a_model_the_builder_cannot_write_goes_through_torch_and_says_why(tmp_path):
    from export.llm_export import LlmExportConfig, export_llm  # noqa: PLC0415
    from training.models.llm import load_base_llm, save_tiny_llm  # noqa: PLC0415

    llm, tok = load_base_llm(save_tiny_llm(tmp_path / "hf8", seed=0))  # head size 8
    assert "head size 8" in unsupported(llm)
    out = tmp_path / "out8"
    out.mkdir()
    section = export_llm(llm, tok, out, LlmExportConfig(precisions=("fp32",)))
    assert section["exporter"].startswith("torch.onnx.export") and "head size 8" in section["exporter"]
    llm16, tok16 = load_base_llm(save_tiny_llm(tmp_path / "hf16", seed=0, head_dim=16))
    out16 = tmp_path / "out16"
    out16.mkdir()
    section = export_llm(llm16, tok16, out16, LlmExportConfig(precisions=("fp32",)))
    assert section["exporter"].startswith("binaura graph builder") and (out16 / "decoder_fp32.onnx").is_file()
