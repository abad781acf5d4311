"""GPTQ's calibration and grouping (export/llm_quant.py): batching the calibration and
quantising the linears that read one tensor together change nothing but the time."""

from __future__ import annotations

import pytest
import torch

from export.llm_quant import calibration_hessians, calibration_sequences, gptq


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """(model, tokenizer): the project's tiny random Llama (SmolLM2's shape) and its tokenizer."""
    from training.models.llm import load_base_llm, save_tiny_llm  # noqa: PLC0415

    model, tok = load_base_llm(save_tiny_llm(tmp_path_factory.mktemp("tiny-llm") / "hf", seed=0))
    return model.eval(), tok


QUESTIONS = ("Where is the dog?", "Which is closer, the siren or the phone?", "How many sounds can you hear?",
             "Is the bird singing above me?", "Turn me to face the siren: which way and how far?")


def test_batched_calibration_equals_one_prompt_at_a_time(tiny_llm):
    """Left-padded generation and right-padded statistics: the same sequences and the same
    x x^T sums as prompt by prompt (padding tokens never counted)."""
    model, tok = tiny_llm
    with torch.no_grad():
        one = calibration_sequences(model, tok, QUESTIONS, max_new_tokens=6, batch_size=1)
        many = calibration_sequences(model, tok, QUESTIONS, max_new_tokens=6, batch_size=4)
    assert one == many
    h1 = calibration_hessians(model, tok, QUESTIONS, max_new_tokens=6, batch_size=1)
    h4 = calibration_hessians(model, tok, QUESTIONS, max_new_tokens=6, batch_size=4)
    assert h1.keys() == h4.keys()
    for name in h1:
        assert torch.allclose(h1[name], h4[name], rtol=1e-4, atol=1e-4 * float(h1[name].abs().max())), name
    layer = "model.layers.0."
    assert h4[layer + "self_attn.k_proj"] is h4[layer + "self_attn.q_proj"] is h4[layer + "self_attn.v_proj"]
    assert h4[layer + "mlp.up_proj"] is h4[layer + "mlp.gate_proj"]
    assert h4[layer + "mlp.down_proj"] is not h4[layer + "mlp.up_proj"]
    assert h4[layer + "self_attn.o_proj"] is not h4[layer + "self_attn.q_proj"]


def test_gptq_rows_are_independent_so_stacked_linears_quantise_alike():
    """One Hessian, two weight matrices: GPTQ of the stack equals GPTQ of each (rows only
    share the Hessian), and on inputs drawn from that Hessian it beats round-to-nearest."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 64, generator=g) @ torch.randn(64, 64, generator=g) * 0.3  # correlated inputs
    h = (x.T @ x).double()
    w1, w2 = torch.randn(12, 64, generator=g), torch.randn(5, 64, generator=g)
    q, s, z = gptq(torch.cat([w1, w2]), h)
    q1, s1, z1 = gptq(w1, h)
    q2, s2, z2 = gptq(w2, h)
    assert (q[:12] == q1).mean() > 0.999 and (q[12:] == q2).mean() > 0.999
    assert abs(s[:12] - s1).max() < 1e-6 * abs(s1).max() and (z[12:] == z2).all()

    def output_error(qq, ss, zz, w):
        deq = (torch.tensor(qq, dtype=torch.float32) - torch.tensor(zz, dtype=torch.float32).repeat_interleave(32, 1)) \
            * torch.tensor(ss).repeat_interleave(32, 1)
        return float(((x @ (deq - w).T) ** 2).mean())

    lo, up = w1.reshape(12, 2, 32).amin(2).clamp_max(0), w1.reshape(12, 2, 32).amax(2).clamp_min(0)
    rs = (up - lo) / 15
    rz = torch.round(-lo / rs)
    rq = torch.clamp(torch.round(w1 / rs.repeat_interleave(32, 1) + rz.repeat_interleave(32, 1)), 0, 15)
    assert output_error(q1, s1, z1, w1) < 0.8 * output_error(rq.numpy(), rs.numpy(), rz.numpy(), w1)


def test_statistics_gathered_while_generating_equal_a_forward_over_the_answers(tiny_llm):
    """One pass: x x^T gathered during generation equals a plain forward over each prompt and
    the model's own answer (the tokens it was fed: through the end-of-turn token, or all but the
    last when it hit the token limit), and the output head's comes from every position."""
    model, tok = tiny_llm
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        seqs = calibration_sequences(model, tok, QUESTIONS, max_new_tokens=6, batch_size=4)
        got = calibration_hessians(model, tok, QUESTIONS, max_new_tokens=6, batch_size=4)
    ref: dict = {}

    def hook(name):
        def add(_mod, inp, _out):
            x = inp[0].reshape(-1, inp[0].shape[-1]).double()
            ref[name] = ref.get(name, 0) + x.T @ x
        return add

    hooks = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    try:
        with torch.no_grad():
            for s in seqs:
                model(torch.tensor([s if s[-1] == eos else s[:-1]]))
    finally:
        for h in hooks:
            h.remove()
    assert got.keys() == ref.keys() and "lm_head" in got
    for name, r in ref.items():
        assert torch.allclose(got[name], r, rtol=1e-4, atol=1e-5 * float(r.abs().max())), name
