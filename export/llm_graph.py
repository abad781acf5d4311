"""A Llama-family causal LM written straight into an ONNX decoder graph, with ONNX Runtime's
fused operators: the bundle's fast path.

torch.onnx.export traces transformers' Python into ~4,900 small operators (mask arithmetic,
rotary halves, key/value repeats); at batch 1 their launches, not the 4-bit matrix products,
set the speed of a decode step, and the trace takes ~20 s. Here each layer is ~11 nodes,
what onnxruntime-genai's model builder writes for the same models:

    SkipSimplifiedLayerNormalization -> MatMulNBits (q|k|v) -> GroupQueryAttention (rotary
    inside, cos/sin tables from the model's own rotary module) -> MatMulNBits (o) ->
    SkipSimplifiedLayerNormalization -> MatMulNBits (gate|up) -> SiLU(gate) * up ->
    MatMulNBits (down)

and the weights come from the torch modules directly: float32 MatMul for the fp32 decoder,
4-bit blocks for the int4 one (GPTQ's or round to nearest: export/llm_quant.py), so no fp32
file is written and read back. Its inputs and outputs are agent/answer/decoder.py's
(inputs_embeds, attention_mask, past_key_values.N.key/value in; logits, present.N.* out); the
positions come from the attention mask (batch 1, no padding: the runtime's contract), as in
onnxruntime-genai's graphs, so there is no position_ids input.

Covers LlamaForCausalLM (SmolLM2, Llama), Qwen2ForCausalLM (its q/k/v biases) and
MistralForCausalLM without a sliding window; `unsupported` names why another model is not,
and export/llm_export.py then falls back to torch's exporter.
"""

from __future__ import annotations

import numpy as np
import torch

from agent.core.errors import BinauraError
from export.llm_quant import pack_nibbles

ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")
MAX_POSITIONS = 8192  # rows of the rotary tables: far above any binaura prompt, 2 MB for SmolLM2


def unsupported(llm) -> str | None:
    """Why `llm` cannot go through this builder (None: it can)."""
    from export.llm_export import llm_shape  # noqa: PLC0415 - llm_export imports this module
    arch = type(llm).__name__
    if arch not in ARCHITECTURES:
        return f"architecture {arch} (the graph builder covers {', '.join(ARCHITECTURES)})"
    cfg = llm.config.get_text_config()
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"activation {cfg.hidden_act!r} (SwiGLU with SiLU expected)"
    if getattr(cfg, "mlp_bias", False):
        return "MLP biases"
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return f"a sliding attention window ({cfg.sliding_window})"
    head_dim = llm_shape(llm)["head_dim"]
    if head_dim % 16:
        return f"head size {head_dim} (GroupQueryAttention needs a multiple of 16)"
    attn = llm.model.layers[0].self_attn
    if attn.o_proj.bias is not None:
        return "an output-projection bias"
    if getattr(llm.model, "rotary_emb", None) is None:
        return "no rotary-embedding module"
    return None


class _Graph:
    """Nodes and initializers under construction, with unique names."""

    def __init__(self):
        from onnx import helper, numpy_helper  # noqa: PLC0415

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits = [], []
        self._n = 0

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, domain: str = "", name: str | None = None,
             outputs: list[str] | None = None, **attrs) -> list[str]:
        self._n += 1
        name = name or f"{op}_{self._n}"
        outs = outputs or [f"{name}/out{i}" for i in range(n_out)]
        self.nodes.append(self.helper.make_node(op, inputs, outs, name=name, domain=domain or None, **attrs))
        return outs


class DecoderBuilder:
    """Writes the decoder graph of `llm` (plain, LoRA merged). `quantize(sources, (N, K) float32)`
    gives a linear's 4-bit values, (q, scales, zeros) as llm_quant.block_quantize returns them, for the
    int4 graph (sources: the torch module names whose weights are stacked in it, e.g. a
    layer's q/k/v projections); None writes the fp32 graph."""

    def __init__(self, llm, quantize=None, block_size: int = 32, accuracy_level: int = 4, opset: int = 17):
        from export.llm_export import llm_shape  # noqa: PLC0415 - llm_export imports this module

        why = unsupported(llm)
        if why:
            raise BinauraError(f"the ONNX graph builder cannot write this model: {why}")
        self.llm, self.quantize = llm, quantize
        self.block_size, self.accuracy_level, self.opset = block_size, accuracy_level, opset
        cfg = llm.config.get_text_config()
        self.cfg = cfg
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = llm_shape(llm)["head_dim"]
        self.g = _Graph()
        self.names = {id(m): n for n, m in llm.named_modules()}

    # -- pieces --------------------------------------------------------------------------
    def linear(self, x: str, name: str, modules: list[torch.nn.Linear]) -> str:
        """x @ W^T (+ b) for the modules' weights stacked along the output dimension."""
        w = torch.cat([m.weight.detach().float() for m in modules]).numpy()
        biases = [m.bias for m in modules]
        if any(b is not None for b in biases) and not all(b is not None for b in biases):
            raise BinauraError(f"{name}: biases on some of the stacked linears only")
        bias = torch.cat([b.detach() for b in biases]) if biases[0] is not None else None
        n, k = w.shape
        g = self.g
        if self.quantize is None:
            out = g.node("MatMul", [x, g.const(f"{name}.weight_t", w.T.copy())], name=f"{name}/MatMul")[0]
        else:
            if k % self.block_size:
                raise BinauraError(f"{name}: input width {k} is not a multiple of the block size {self.block_size}")
            q, s, z = self.quantize([self.names[id(m)] for m in modules], w)
            blocks = k // self.block_size
            blob = pack_nibbles(q.reshape(n * blocks, self.block_size)).reshape(n, blocks, self.block_size // 2)
            inputs = [x, g.const(f"{name}.qweight", blob), g.const(f"{name}.scales", s.astype(np.float32)),
                      g.const(f"{name}.zero_points", pack_nibbles(z.astype(np.uint8)))]
            out = g.node("MatMulNBits", inputs, domain="com.microsoft", name=f"{name}/MatMulNBits", K=k, N=n,
                         bits=4, block_size=self.block_size, accuracy_level=self.accuracy_level)[0]
        if bias is not None:
            out = g.node("Add", [out, g.const(f"{name}.bias", bias.detach().float().numpy())], name=f"{name}/Add")[0]
        return out

    def rotary_tables(self) -> tuple[str, str]:
        """cos/sin (positions, head_dim/2) from the model's own rotary module (its theta and any
        scaling), the halves GroupQueryAttention rotates with (not interleaved)."""
        limit = min(int(getattr(self.cfg, "max_position_embeddings", MAX_POSITIONS)), MAX_POSITIONS)
        pos = torch.arange(limit)[None]
        with torch.no_grad():
            cos, sin = self.llm.model.rotary_emb(torch.zeros(1, dtype=torch.float32), pos)
        half = self.head_dim // 2
        cos, sin = cos[0].float().numpy(), sin[0].float().numpy()
        if cos.shape[-1] != self.head_dim or not np.allclose(cos[:, :half], cos[:, half:]):
            raise BinauraError("the ONNX graph builder needs full, non-interleaved rotary embeddings")
        return self.g.const("cos_cache", cos[:, :half].copy()), self.g.const("sin_cache", sin[:, :half].copy())

    def norm(self, x: str, residual: str | None, weight: torch.Tensor, eps: float, name: str) -> tuple[str, str]:
        """(RMS-normalised, the residual sum): SkipSimplifiedLayerNormalization adds the residual
        first when there is one."""
        g = self.g
        w = g.const(f"{name}.weight", weight.detach().float().numpy())
        if residual is None:
            return g.node("SimplifiedLayerNormalization", [x, w], name=name, axis=-1, epsilon=eps, stash_type=1)[0], x
        outs = g.node("SkipSimplifiedLayerNormalization", [x, residual, w], domain="com.microsoft", name=name,
                      outputs=[f"{name}/out", "", "", f"{name}/sum"], epsilon=eps)
        return outs[0], outs[3]

    def attention(self, h: str, layer, i: int, seqlens: str, total: str, cos: str, sin: str) -> str:
        """Layer i's self-attention output; its cache goes out as present.i.key/value."""
        a = layer.self_attn
        name = f"model.layers.{i}.self_attn"
        qkv = self.linear(h, f"{name}.qkv_proj", [a.q_proj, a.k_proj, a.v_proj])
        out = self.g.node(
            "GroupQueryAttention", [qkv, "", "", f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens, total,
                                    cos, sin], domain="com.microsoft", name=f"{name}/GroupQueryAttention",
            outputs=[f"{name}/out", f"present.{i}.key", f"present.{i}.value"], num_heads=self.n_heads,
            kv_num_heads=self.n_kv, scale=float(a.scaling), do_rotary=1, rotary_interleaved=0, local_window_size=-1)[0]
        return self.linear(out, f"{name}.o_proj", [a.o_proj])

    def mlp(self, h: str, layer, i: int) -> str:
        m, name, g = layer.mlp, f"model.layers.{i}.mlp", self.g
        gate_up = self.linear(h, f"{name}.gate_up_proj", [m.gate_proj, m.up_proj])
        gate, up = g.node("Split", [gate_up, g.const(f"{name}.split", np.array([m.gate_proj.out_features] * 2,
                                                                               np.int64))], n_out=2, axis=-1)
        act = g.node("Mul", [gate, g.node("Sigmoid", [gate])[0]])[0]
        return self.linear(g.node("Mul", [act, up])[0], f"{name}.down_proj", [m.down_proj])

    # -- the whole graph -------------------------------------------------------------------
    def build(self):
        from onnx import TensorProto  # noqa: PLC0415

        g, helper, cfg = self.g, self.g.helper, self.cfg
        n_layers, hd = cfg.num_hidden_layers, self.head_dim
        vocab = self.llm.get_output_embeddings().weight.shape[0]
        # the positions and lengths GroupQueryAttention reads, from the mask (batch 1, no padding)
        mask_len = g.node("ReduceSum", ["attention_mask", g.const("axis1", np.array([1], np.int64))], keepdims=0)[0]
        seqlens = g.node("Cast", [g.node("Sub", [mask_len, g.const("one", np.array(1, np.int64))])[0]],
                         to=TensorProto.INT32)[0]
        total = g.node("Cast", [g.node("Gather", [g.node("Shape", ["attention_mask"])[0],
                                                  g.const("dim1", np.array(1, np.int64))], axis=0)[0]],
                       to=TensorProto.INT32)[0]
        cos, sin = self.rotary_tables()
        layers = self.llm.model.layers
        eps = float(cfg.rms_norm_eps)
        h, residual = self.norm("inputs_embeds", None, layers[0].input_layernorm.weight, eps, "model.layers.0.input_layernorm")
        for i, layer in enumerate(layers):
            attn = self.attention(h, layer, i, seqlens, total, cos, sin)
            h, residual = self.norm(attn, residual, layer.post_attention_layernorm.weight, eps,
                                    f"model.layers.{i}.post_attention_layernorm")
            mlp = self.mlp(h, layer, i)
            nxt = layers[i + 1].input_layernorm.weight if i + 1 < n_layers else self.llm.model.norm.weight
            h, residual = self.norm(mlp, residual, nxt, eps, f"model.layers.{i + 1}.input_layernorm"
                                    if i + 1 < n_layers else "model.norm")
        logits = self.linear(h, "lm_head", [self.llm.get_output_embeddings()])
        g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits"))
        f32 = TensorProto.FLOAT
        inputs = [helper.make_tensor_value_info("inputs_embeds", f32, [1, "sequence_length", cfg.hidden_size]),
                  helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "total_sequence_length"])]
        inputs += [helper.make_tensor_value_info(f"past_key_values.{i}.{k}", f32, [1, self.n_kv, "past_sequence_length", hd])
                   for i in range(n_layers) for k in ("key", "value")]
        outputs = [helper.make_tensor_value_info("logits", f32, [1, "sequence_length", vocab])]
        outputs += [helper.make_tensor_value_info(f"present.{i}.{k}", f32, [1, self.n_kv, "total_sequence_length", hd])
                    for i in range(n_layers) for k in ("key", "value")]
        graph = helper.make_graph(g.nodes, "binaura_decoder", inputs, outputs, g.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset),
                                                       helper.make_opsetid("com.microsoft", 1)],
                                 producer_name="binaura export/llm_graph.py")
