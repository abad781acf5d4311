"""4-bit weights for the bundle's decoder by GPTQ: each weight's rounding error is compensated
on the weights not yet rounded, using the layer's input statistics on real prompts.

Why (docs/bundle.md, "Measured"): plain round-to-nearest (RTN) 4-bit blocks, what ONNX
Runtime's MatMulNBitsQuantizer does, are correct (dequantised weights within 8-9 % of fp32,
the kernel equal to a numpy dequantisation) but too coarse for a 135M model: the noise of
every projection adds up through 30 layers, and the shipped program writer changed 14 of 100
programs. GPTQ (Frantar et al. 2022) with the same format (blocks of 32 along the input
dimension, one scale and a 4-bit zero point each) cuts the next-token KL divergence 11 times
(98/100 programs the same, RTN 86/100), at the same size and speed.

`calibration_hessians` runs the torch model on calibration prompts (the program prompt of
CALIBRATION_QUESTIONS, each followed by the model's own greedy answer) and sums x x^T of
every nn.Linear's input. `gptq` quantises one weight; `apply_gptq` overwrites the
MatMulNBits initializers ONNX Runtime's quantizer wrote (its layout: B (N, blocks, bs/2)
uint8, low nibble first; scales (N, blocks); zero points (N, ceil(blocks/2)) uint8).
"""

from __future__ import annotations

import numpy as np
import torch

from agent.core.errors import BinauraError
from agent.core.prompt import render_program

#: Benchmark-style questions (every task of agent/qa, several phrasings): the calibration set.
CALIBRATION_QUESTIONS = (
    "Which of these is around me right now?", "Tell me where someone walking is.",
    "At what angle is someone ringing the doorbell, in degrees from straight ahead (left positive)?",
    "Is the bell at the door far above me?", "At what distance is the bell at the door?",
    "Tell me how many metres separate me from someone ringing the doorbell.", "Do you hear exactly two sounds?",
    "Which of these sounds began earliest?", "Do you hear the bell at the door? Where?",
    "How is the door chime placed relative to someone walking?", "Which is closer, the door chime or the footsteps?",
    "What's the farthest sound from me?", "Is the sound on my left someone walking?",
    "Tell me the angle between the bell at the door and the person walking in degrees.",
    "After I turn towards the doorbell, is the person walking ahead of me on the right?",
    "After I turn 90 degrees to my left, is the person walking ahead of me on the right?",
    "Turn me towards the person walking: left or right, how many degrees?",
    "Ignoring someone walking, is the bell at the door closest to me?", "Should someone walking be my first concern?",
    "True or false: the bell at the door is in front of me and about 0.9 metres away.",
    "Is the phone about 2.3 metres away?", "Where is the dog barking?", "Is the siren behind me on the left?",
    "How far away is the music?", "Is the car horn below me?", "How many sounds can you hear?",
    "Which started first, the knocking or the kettle water?", "Is there an alarm going off?",
    "Is the keyboard typing to my right?", "What direction is the engine in, in degrees?",
    "If I turn around, where will the fan be?", "Which is farther, the clapping or the glass breaking?",
    "Is the bird singing above me?", "How many metres away is the person talking?",
    "Do you hear a telephone ringing? Where?", "Turn me to face the siren: which way and how far?",
    "Ignoring the music, which sound is closest?", "Should the alarm be my first concern?",
    "Is the dog to the left of the doorbell?", "After I turn 45 degrees to my right, is the water in front of me?",
    "True or false: the engine is behind me and about 3 metres away.", "Is the speech coming from the front-right?",
    "What is the angle between the dog and the siren?", "Name every sound you hear.", "Is the fan near or far?",
)


def calibration_hessians(llm, tokenizer, questions=CALIBRATION_QUESTIONS, max_new_tokens: int = 32) -> dict:
    """{module name: (K, K) float64 sum of x x^T over every calibration token} for each
    nn.Linear of the causal LM `llm` (plain, LoRA merged)."""
    sums: dict[str, torch.Tensor] = {}

    def hook(name):
        def add(_mod, inp, _out):
            x = inp[0].detach().reshape(-1, inp[0].shape[-1]).double()
            sums[name] = sums.get(name, 0) + x.T @ x
        return add

    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>",) if t in tokenizer.get_vocab()]
    eos = eos or [tokenizer.eos_token_id]
    with torch.no_grad():
        seqs = []
        for q in questions:
            ids = torch.tensor([tokenizer(render_program(q).before, add_special_tokens=False).input_ids])
            seqs.append(llm.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, eos_token_id=eos,
                                     max_new_tokens=max_new_tokens, pad_token_id=eos[0]))
        hooks = [m.register_forward_hook(hook(n)) for n, m in llm.named_modules() if isinstance(m, torch.nn.Linear)]
        try:
            for seq in seqs:
                llm(seq)
        finally:
            for h in hooks:
                h.remove()
    return sums


def gptq(weight: torch.Tensor, hessian: torch.Tensor, block_size: int = 32, symmetric: bool = False,
         damp: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """weight (N out, K in), hessian (K, K) -> (q (N, K) uint8 in 0..15, scales (N, K/bs) float32,
    zero points (N, K/bs) uint8; 8 when symmetric). Dequantised: (q - zero) * scale per block.
    Blocks follow the input order (no act-order), each block's scale set when GPTQ reaches it."""
    n, k = weight.shape
    if k % block_size:
        raise BinauraError(f"GPTQ needs the input width {k} to be a multiple of the block size {block_size}")
    w = weight.detach().double().clone()
    h = hessian.double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k, dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros(n, k, dtype=torch.uint8)
    scales = torch.zeros(n, k // block_size, dtype=torch.float64)
    zeros = torch.zeros_like(scales)
    for b0 in range(0, k, block_size):
        w1, hi = w[:, b0:b0 + block_size].clone(), hinv[b0:b0 + block_size, b0:b0 + block_size]
        err = torch.zeros_like(w1)
        if symmetric:
            s = (w1.abs().amax(1) / 8).clamp_min(1e-12)
            z = torch.full_like(s, 8.0)
        else:
            lo, up = w1.amin(1).clamp_max(0), w1.amax(1).clamp_min(0)
            s = ((up - lo) / 15).clamp_min(1e-12)
            z = torch.round(-lo / s).clamp(0, 15)
        scales[:, b0 // block_size], zeros[:, b0 // block_size] = s, z
        for j in range(block_size):
            qj = torch.clamp(torch.round(w1[:, j] / s + z), 0, 15)
            q[:, b0 + j] = qj.to(torch.uint8)
            e = (w1[:, j] - (qj - z) * s) / hi[j, j]
            w1[:, j:] -= e[:, None] * hi[j, j:][None, :]
            err[:, j] = e
        w[:, b0 + block_size:] -= err @ hinv[b0:b0 + block_size, b0 + block_size:]
    return q.numpy(), scales.float().numpy(), zeros.to(torch.uint8).numpy()


def _pack(values: np.ndarray) -> np.ndarray:
    """(rows, m) uint8 in 0..15 -> (rows, ceil(m/2)) uint8, element 2i in the low nibble."""
    if values.shape[1] % 2:
        values = np.pad(values, ((0, 0), (0, 1)))
    return (values[:, 0::2] | (values[:, 1::2] << 4)).astype(np.uint8)


def module_of(node_name: str) -> str:
    """ONNX MatMul(NBits) node name (TorchScript scope) -> the torch module's name:
    '/llm/model/layers.0/self_attn/q_proj/MatMul_Q4' -> 'model.layers.0.self_attn.q_proj'."""
    name = node_name.removeprefix("/llm/")
    for suffix in ("/MatMul_Q4", "/MatMul"):
        name = name.removesuffix(suffix)
    return name.replace("/", ".")


def apply_gptq(model, llm, hessians: dict, block_size: int, symmetric: bool) -> int:
    """Overwrite the 4-bit initializers of every MatMulNBits node of the onnx ModelProto `model`
    (ONNX Runtime's RTN output of `llm`'s export) with GPTQ's. Returns the nodes rewritten."""
    from onnx import numpy_helper  # noqa: PLC0415

    inits = {i.name: i for i in model.graph.initializer}
    modules = dict(llm.named_modules())
    done = 0
    for node in (n for n in model.graph.node if n.op_type == "MatMulNBits"):
        name = module_of(node.name)
        mod, h = modules.get(name), hessians.get(name)
        if mod is None or h is None:
            raise BinauraError(f"{node.name}: no torch module {name!r} with calibration statistics for GPTQ")
        n_out, k = mod.weight.shape
        q, s, z = gptq(mod.weight, h, block_size, symmetric)
        blob = _pack(q.reshape(n_out * (k // block_size), block_size)).reshape(n_out, k // block_size, block_size // 2)
        new = {node.input[1]: blob, node.input[2]: s}
        if len(node.input) > 3 and node.input[3]:
            new[node.input[3]] = _pack(z)
        elif not symmetric:
            raise BinauraError(f"{node.name}: the quantizer wrote no zero points for an asymmetric export")
        for key, arr in new.items():
            old = numpy_helper.to_array(inits[key])
            if old.size != arr.size:
                raise BinauraError(f"{node.name}: {key} holds {old.shape}, GPTQ made {arr.shape} (another layout)")
            inits[key].CopyFrom(numpy_helper.from_array(arr.reshape(old.shape).astype(old.dtype), key))
        done += 1
    return done
