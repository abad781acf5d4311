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
CALIBRATION_QUESTIONS, each followed by the model's own greedy answer, gathered as it writes
it) and sums x x^T of every nn.Linear's input. `gptq` quantises one weight; `apply_gptq` overwrites the
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


def _eos_ids(tokenizer) -> list[int]:
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>",) if t in tokenizer.get_vocab()]
    return eos or [tokenizer.eos_token_id]


def _generate(llm, tokenizer, questions, max_new_tokens: int, batch_size: int, eos: list[int]):
    """Greedy answers to each question's program prompt, in left-padded batches: yields
    (prompts, generated rows) per batch."""
    for i in range(0, len(questions), batch_size):
        prompts = [tokenizer(render_program(q).before, add_special_tokens=False).input_ids
                   for q in questions[i:i + batch_size]]
        width = max(map(len, prompts))
        ids = torch.tensor([[eos[0]] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        out = llm.generate(ids, attention_mask=mask, do_sample=False, eos_token_id=eos,
                           max_new_tokens=max_new_tokens, pad_token_id=eos[0])
        yield prompts, out[:, width:].tolist()


def calibration_sequences(llm, tokenizer, questions=CALIBRATION_QUESTIONS, max_new_tokens: int = 32,
                          batch_size: int = 16) -> list[list[int]]:
    """Each calibration question's program prompt followed by the model's own greedy answer
    (through its end-of-turn token), as token ids."""
    eos = _eos_ids(tokenizer)
    seqs = []
    with torch.no_grad():
        for prompts, rows in _generate(llm, tokenizer, questions, max_new_tokens, batch_size, eos):
            for p, row in zip(prompts, rows, strict=True):
                stop = next((j for j, t in enumerate(row) if t in eos), len(row) - 1)
                seqs.append(p + row[:stop + 1])
    return seqs


def calibration_hessians(llm, tokenizer, questions=CALIBRATION_QUESTIONS, max_new_tokens: int = 32,
                         batch_size: int = 16) -> dict:
    """{module name: (K, K) float64 sum of x x^T over every calibration token} for each
    nn.Linear of the causal LM `llm` (plain, LoRA merged), gathered while the model writes its
    own greedy answers (one pass: the prompt's real tokens, then each answer token through the
    end-of-turn token; left padding and the steps after a row has ended are not counted). The
    output head's statistics come from the final hidden states (generation computes its logits
    at the last position only). Linears that read one tensor (a layer's q/k/v projections, its
    gate/up pair) share one matrix object: GPTQ quantises them together."""
    eos = _eos_ids(tokenizer)
    eos_t = torch.tensor(eos)
    head = llm.get_output_embeddings()
    head_name = next(n for n, m in llm.named_modules() if m is head)
    sums: dict[str, torch.Tensor] = {}
    rows: dict[str, list[torch.Tensor]] = {}  # the kept input rows of the batch being generated
    shared: dict[str, str] = {}  # a linear -> the one before it that read the same tensor
    state: dict = {"keep": None, "done": None, "x": None, "name": None}

    def before_step(_mod, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids.shape[1] > 1:  # the prompt: its real tokens (left padding dropped)
            mask = kwargs.get("attention_mask")  # generate leaves it out when nothing is padded
            state["keep"] = (torch.ones_like(ids) if mask is None else mask[:, -ids.shape[1]:]).reshape(-1).bool()
            state["done"] = torch.zeros(ids.shape[0], dtype=torch.bool)
        else:  # one answer token per row: counted through the end-of-turn token, not after it
            state["keep"] = ~state["done"]
            state["done"] = state["done"] | torch.isin(ids[:, -1], eos_t)
        state["x"] = None

    def add(name, x):
        if x is state["x"]:  # the same input as the linear before it (held, so not a reused address)
            shared[name] = state["name"]
            return
        rows.setdefault(name, []).append(x.detach().reshape(-1, x.shape[-1])[state["keep"]].float())
        state["x"], state["name"] = x, name

    def flush():  # one x^T x per linear and batch: a step's few rows are not worth a (K, K) update
        for name, chunks in rows.items():
            flat = torch.cat(chunks)
            xtx = (flat.T @ flat).double()
            sums[name] = sums[name] + xtx if name in sums else xtx
        rows.clear()

    def linear_hook(name):
        return lambda _mod, inp, _out: add(name, inp[0])

    def final_hook(_mod, _inp, out):
        add(head_name, out[0] if isinstance(out, tuple) else out.last_hidden_state)

    hooks = [llm.register_forward_pre_hook(before_step, with_kwargs=True),
             llm.base_model.register_forward_hook(final_hook)]
    hooks += [m.register_forward_hook(linear_hook(n)) for n, m in llm.named_modules()
              if isinstance(m, torch.nn.Linear) and m is not head]
    try:
        with torch.no_grad():
            for _ in _generate(llm, tokenizer, questions, max_new_tokens, batch_size, eos):
                flush()
    finally:
        for h in hooks:
            h.remove()
        state["x"] = None
        rows.clear()
    for name, first in shared.items():
        sums[name] = sums[first]
    return sums


def inverse_cholesky(h: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor U of h^-1 (h^-1 = U^T U) from one factorisation: with P the
    reversal, P h P = L L^T gives h^-1 = (P L^-T P)(P L^-1 P), so U = P L^-1 P (half the work
    of factorising, inverting and factorising again)."""
    low = torch.linalg.cholesky(h.flip(0, 1))
    return torch.linalg.solve_triangular(low, torch.eye(len(h), dtype=h.dtype), upper=False).flip(0, 1)


def block_scales(wmin: np.ndarray, wmax: np.ndarray, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    """(scales, zero points as float) of 4-bit blocks from each block's smallest and largest
    weight: asymmetric over [min(wmin, 0), max(wmax, 0)] in 15 steps, or symmetric about 8."""
    if symmetric:
        s = np.maximum(np.maximum(-wmin, wmax) / 8, 1e-12)
        return s, np.full_like(s, 8.0)
    lo, up = np.minimum(wmin, 0), np.maximum(wmax, 0)
    s = np.maximum((up - lo) / 15, 1e-12)
    return s, np.clip(np.round(-lo / s), 0, 15)


def block_quantize(weight: np.ndarray, block_size: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round to nearest in MatMulNBits' blocks: weight (N, K) -> (q (N, K) uint8 0..15,
    scales (N, K/bs), zero points (N, K/bs) uint8), GPTQ's scale and zero rule without its
    error compensation."""
    n, k = weight.shape
    w = weight.reshape(n, k // block_size, block_size).astype(np.float32)
    s, z = block_scales(w.min(-1), w.max(-1), symmetric)
    q = np.clip(np.round(w / s[..., None] + z[..., None]), 0, 15).astype(np.uint8)
    return q.reshape(n, k), s.astype(np.float32), z.astype(np.uint8)


def gptq(weight: torch.Tensor, hessian: torch.Tensor, block_size: int = 32, symmetric: bool = False,
         damp: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """weight (N out, K in), hessian (K, K) -> (q (N, K) uint8 in 0..15, scales (N, K/bs) float32,
    zero points (N, K/bs) uint8; 8 when symmetric). Dequantised: (q - zero) * scale per block.
    Blocks follow the input order (no act-order), each block's scale set when GPTQ reaches it.
    The damped Hessian is formed in float64; its inverse's Cholesky factor and the sweeps are
    float32 (as GPTQ's reference code; numpy's small column operations cost a fraction of
    torch's per call)."""
    n, k = weight.shape
    if k % block_size:
        raise BinauraError(f"GPTQ needs the input width {k} to be a multiple of the block size {block_size}")
    h = hessian.detach().double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    h += damp * torch.mean(torch.diag(h)) * torch.eye(k, dtype=h.dtype)
    hinv = inverse_cholesky(h.float()).numpy()
    w = weight.detach().float().numpy().copy()
    w[:, dead.numpy()] = 0
    wt = np.ascontiguousarray(w.T)  # (K, N): a column of the weight is a contiguous row here
    q = np.zeros((k, n), np.uint8)
    blocks = k // block_size
    scales, zeros = np.zeros((blocks, n), np.float32), np.zeros((blocks, n), np.float32)
    for bi in range(blocks):
        b0, b1 = bi * block_size, (bi + 1) * block_size
        w1, hi = wt[b0:b1], hinv[b0:b1, b0:b1]  # a view: updated in place
        s, z = block_scales(w1.min(0), w1.max(0), symmetric)
        scales[bi], zeros[bi] = s, z
        err = np.empty_like(w1)
        for j in range(block_size):
            qj = np.clip(np.round(w1[j] / s + z), 0, 15)
            q[b0 + j] = qj
            e = (w1[j] - (qj - z) * s) / hi[j, j]
            w1[j:] -= hi[j, j:, None] * e[None, :]
            err[j] = e
        wt[b1:] -= hinv[b0:b1, b1:].T @ err
    return np.ascontiguousarray(q.T), np.ascontiguousarray(scales.T), np.ascontiguousarray(zeros.T).astype(np.uint8)


def pack_nibbles(values: np.ndarray) -> np.ndarray:
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
    (ONNX Runtime's RTN output of `llm`'s export) with GPTQ's. Linears sharing one Hessian
    object (calibration_hessians: they read one tensor) are quantised in one call, their rows
    stacked: GPTQ treats rows independently, so this equals one call each, at a fraction of
    the cost. Returns the nodes rewritten."""
    from onnx import numpy_helper  # noqa: PLC0415

    inits = {i.name: i for i in model.graph.initializer}
    modules = dict(llm.named_modules())
    groups: dict[int, list] = {}
    for node in (n for n in model.graph.node if n.op_type == "MatMulNBits"):
        name = module_of(node.name)
        mod, h = modules.get(name), hessians.get(name)
        if mod is None or h is None:
            raise BinauraError(f"{node.name}: no torch module {name!r} with calibration statistics for GPTQ")
        groups.setdefault(id(h), []).append((node, mod, h))
    done = 0
    for members in groups.values():
        stacked = torch.cat([mod.weight.detach() for _, mod, _ in members])
        q_all, s_all, z_all = gptq(stacked, members[0][2], block_size, symmetric)
        row = 0
        for node, mod, _ in members:
            n_out, k = mod.weight.shape
            q, s, z = (a[row:row + n_out] for a in (q_all, s_all, z_all))
            row += n_out
            _write_node(node, inits, numpy_helper, q, s, z, n_out, k, block_size, symmetric)
            done += 1
    return done


def _write_node(node, inits: dict, numpy_helper, q, s, z, n_out: int, k: int, block_size: int,
                symmetric: bool) -> None:
    """One MatMulNBits node's B, scales and zero points from GPTQ's (q, scales, zeros)."""
    blob = pack_nibbles(q.reshape(n_out * (k // block_size), block_size)).reshape(n_out, k // block_size, block_size // 2)
    new = {node.input[1]: blob, node.input[2]: s}
    if len(node.input) > 3 and node.input[3]:
        new[node.input[3]] = pack_nibbles(z)
    elif not symmetric:
        raise BinauraError(f"{node.name}: the quantizer wrote no zero points for an asymmetric export")
    for key, arr in new.items():
        old = numpy_helper.to_array(inits[key])
        if old.size != arr.size:
            raise BinauraError(f"{node.name}: {key} holds {old.shape}, GPTQ made {arr.shape} (another layout)")
        inits[key].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arr).reshape(old.shape).astype(old.dtype),
                                                    key))
