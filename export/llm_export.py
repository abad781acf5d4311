"""A causal LM (optionally with its LoRA merged in) -> the bundle's language-model files.

Writes into a folder: `decoder_fp32.onnx` (inputs_embeds, attention_mask and the per-layer KV
cache in; logits and the new cache out; the I/O agent/answer/decoder.py runs),
`decoder_int4.onnx` (the same graph with every linear, lm_head included, as ONNX Runtime's
MatMulNBits: 4 bits, blocks of 32 along the input dimension, the values chosen by GPTQ on
calibration prompts (export/llm_quant.py) or by plain round-to-nearest), `embed_tokens.npy`
(the input-embedding table) and `tokenizer.json`, and returns the manifest's `llm` section.
Llama-family models are written by export/llm_graph.py (fused operators, from the weights);
any other causal LM by torch.onnx.export of a small wrapper (with position_ids) and ONNX
Runtime's quantizer, whose values GPTQ then replaces. export/bundle.py writes the
manifest around it. Why this exporter and these settings: docs/bundle.md (measured).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from agent.core.errors import BinauraError, ConfigError
from agent.core.prompt import IM_END

DECODER = {"fp32": "decoder_fp32.onnx", "int4": "decoder_int4.onnx"}
EMBEDDINGS, TOKENIZER = "embed_tokens.npy", "tokenizer.json"
METHODS = ("gptq", "rtn")


@dataclass
class LlmExportConfig:
    """precisions: which decoders to write ("fp32", "int4"). method: how the 4-bit values are
    chosen: "gptq" (rounding error compensated with calibration statistics, the default) or
    "rtn" (round to nearest: 11 times the next-token KL divergence on SmolLM2-135M, see
    docs/bundle.md). block_size, symmetric, accuracy_level: the MatMulNBits format's
    (accuracy_level 4 computes with int8 activations: the fast CPU kernel, measured as
    accurate as 0, which leaves it to the provider). embeddings_dtype: the table's ("float16"
    halves it at a cost below the int4 weights' error; "float32")."""

    precisions: tuple[str, ...] = ("fp32", "int4")
    method: str = "gptq"
    block_size: int = 32
    symmetric: bool = False
    accuracy_level: int = 4
    embeddings_dtype: str = "float16"
    opset: int = 17

    def __post_init__(self):
        problems = []
        if not self.precisions or set(self.precisions) - set(DECODER):
            problems.append(f"precisions {list(self.precisions)}: choose from {list(DECODER)}")
        if self.method not in METHODS:
            problems.append(f"method must be one of {list(METHODS)}, got {self.method!r}")
        if self.block_size not in (16, 32, 64, 128, 256):
            problems.append(f"block_size must be a power of two in 16..256, got {self.block_size}")
        if self.accuracy_level not in range(5):
            problems.append(f"accuracy_level must be 0..4, got {self.accuracy_level}")
        if self.embeddings_dtype not in ("float16", "float32"):
            problems.append(f"embeddings_dtype must be 'float16' or 'float32', got {self.embeddings_dtype!r}")
        if problems:
            raise ConfigError(problems, "language-model export config")


def merged_llm(model):
    """The plain causal LM: a peft model's LoRA merged into its weights (merge_and_unload); a
    SpatialLALM gives its language model. Anything else is returned as it is."""
    llm = getattr(model, "llm", model)
    if hasattr(llm, "merge_and_unload"):
        llm = llm.merge_and_unload()
    return llm.eval().float()


class _KVWrapper(torch.nn.Module):
    """Flat tensors in and out: what torch.onnx.export can name (transformers' Cache objects
    cannot cross the ONNX boundary)."""

    def __init__(self, llm):
        super().__init__()
        self.llm = llm
        self.n_layers = llm.config.get_text_config().num_hidden_layers

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        from transformers import DynamicCache  # noqa: PLC0415

        cache = DynamicCache(config=self.llm.config)
        for i in range(self.n_layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                       past_key_values=cache, use_cache=True)
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def llm_shape(llm) -> dict:
    cfg = llm.config.get_text_config()
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return {"hidden_size": cfg.hidden_size, "num_layers": cfg.num_hidden_layers,
            "num_kv_heads": cfg.num_key_value_heads, "head_dim": head_dim,
            "vocab_size": llm.get_input_embeddings().num_embeddings}


def export_fp32(llm, path: Path, opset: int = 17) -> None:
    """torch.onnx.export (TorchScript exporter) of the decoder with explicit KV-cache I/O."""
    shape = llm_shape(llm)
    n, h, d = shape["num_layers"], shape["num_kv_heads"], shape["head_dim"]
    kv_names = [f"past_key_values.{i}.{k}" for i in range(n) for k in ("key", "value")]
    out_names = ["logits"] + [f"present.{i}.{k}" for i in range(n) for k in ("key", "value")]
    dynamic = {"inputs_embeds": {1: "sequence_length"}, "attention_mask": {1: "total_sequence_length"},
               "position_ids": {1: "sequence_length"}, "logits": {1: "sequence_length"}}
    dynamic.update({k: {2: "past_sequence_length"} for k in kv_names})
    dynamic.update({k: {2: "total_sequence_length"} for k in out_names[1:]})
    past, s = 2, 3  # traced with a past and several new tokens: the general path of the mask code
    args = (torch.zeros(1, s, shape["hidden_size"]), torch.ones(1, past + s, dtype=torch.int64),
            torch.arange(past, past + s)[None], *[torch.zeros(1, h, past, d) for _ in kv_names])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about python branches, checked by the parity tests
        logging.getLogger("transformers").setLevel(logging.ERROR)
        torch.onnx.export(_KVWrapper(llm).eval(), args, str(path), input_names=["inputs_embeds", "attention_mask",
                          "position_ids", *kv_names], output_names=out_names, dynamic_axes=dynamic,
                          opset_version=opset, dynamo=False, do_constant_folding=True)


def quantize_int4(src: Path, dst: Path, cfg: LlmExportConfig, llm=None, tokenizer=None) -> None:
    """MatMulNBits 4-bit weights for every MatMul with a constant weight (lm_head included):
    ONNX Runtime's quantizer writes the nodes (round to nearest); with cfg.method "gptq" their
    values are then replaced by GPTQ's, from `llm` (the torch model `src` was exported from)
    run on calibration prompts written with `tokenizer`."""
    import onnx  # noqa: PLC0415
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer  # noqa: PLC0415

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    q = MatMulNBitsQuantizer(onnx.load(str(src)), bits=4, block_size=cfg.block_size, is_symmetric=cfg.symmetric,
                             accuracy_level=cfg.accuracy_level)
    q.process()
    if not any(n.op_type == "MatMulNBits" for n in q.model.model.graph.node):
        raise BinauraError(f"{src}: the quantizer found no MatMul with constant weights to make 4-bit")
    if cfg.method == "gptq":
        from export.llm_quant import apply_gptq, calibration_hessians  # noqa: PLC0415

        if llm is None or tokenizer is None:
            raise BinauraError("GPTQ needs the torch model and its tokenizer (or LlmExportConfig(method='rtn'))")
        apply_gptq(q.model.model, llm, calibration_hessians(llm, tokenizer), cfg.block_size, cfg.symmetric)
    tmp = dst.with_name(dst.name + ".partial")
    q.model.save_model_to_file(str(tmp), use_external_data_format=False)
    tmp.replace(dst)


def built_decoders(llm, tokenizer, out: Path, cfg: LlmExportConfig) -> None:
    """The decoders written by export/llm_graph.py (fused ONNX Runtime operators) straight
    from the torch weights: GPTQ's 4-bit values from one calibration pass, or round to nearest."""
    import onnx  # noqa: PLC0415

    from export.llm_graph import DecoderBuilder  # noqa: PLC0415
    from export.llm_quant import block_quantize  # noqa: PLC0415

    for precision in cfg.precisions:
        quantize = None
        if precision == "int4" and cfg.method == "gptq":
            from export.llm_quant import calibration_hessians, gptq  # noqa: PLC0415

            hessians = calibration_hessians(llm, tokenizer)

            def quantize(sources, w, hessians=hessians):
                return gptq(torch.from_numpy(w), hessians[sources[0]], cfg.block_size, cfg.symmetric)
        elif precision == "int4":
            def quantize(_sources, w):
                return block_quantize(w, cfg.block_size, cfg.symmetric)
        graph = DecoderBuilder(llm, quantize, cfg.block_size, cfg.accuracy_level, cfg.opset).build()
        tmp = out / (DECODER[precision] + ".partial")
        onnx.save(graph, str(tmp))
        tmp.replace(out / DECODER[precision])


def export_llm(model, tokenizer, out: str | os.PathLike, cfg: LlmExportConfig | None = None) -> dict:
    """Write the language-model files into the folder `out` (which must exist) and return the
    manifest's `llm` section (paths relative to `out`). model: a causal LM, a peft model (its
    LoRA is merged) or a SpatialLALM; tokenizer: its Hugging Face tokenizer. A Llama-family
    model goes through the graph builder (export/llm_graph.py); another through torch's
    exporter and ONNX Runtime's quantizer, and the section's `exporter` says which and why."""
    from export.llm_graph import unsupported  # noqa: PLC0415

    cfg = cfg or LlmExportConfig()
    out = Path(out)
    llm = merged_llm(model)
    shape = llm_shape(llm)
    stop = [IM_END] if IM_END in tokenizer.get_vocab() else []
    if tokenizer.eos_token and tokenizer.eos_token not in stop:
        stop.append(tokenizer.eos_token)
    if not stop:
        raise BinauraError("the tokenizer has neither <|im_end|> nor an eos token to stop on")
    placeholder = tokenizer.pad_token or tokenizer.eos_token  # what SpatialLALM writes at audio positions
    table = llm.get_input_embeddings().weight.detach().to(torch.float32).numpy()
    np.save(out / EMBEDDINGS, table.astype(cfg.embeddings_dtype))
    tokenizer.backend_tokenizer.save(str(out / TOKENIZER))
    why = unsupported(llm)
    if why is None:
        exporter = "binaura graph builder (export/llm_graph.py: GroupQueryAttention, MatMulNBits)"
        built_decoders(llm, tokenizer, out, cfg)
    else:
        exporter = f"torch.onnx.export (TorchScript); not the graph builder: {why}"
        fp32 = out / DECODER["fp32"]
        export_fp32(llm, fp32, cfg.opset)
        if "int4" in cfg.precisions:
            quantize_int4(fp32, out / DECODER["int4"], cfg, llm, tokenizer)
        if "fp32" not in cfg.precisions:
            fp32.unlink()
    return {**shape, "decoders": {p: DECODER[p] for p in cfg.precisions}, "embeddings": EMBEDDINGS,
            "tokenizer": TOKENIZER, "tokenizer_vocab_size": len(tokenizer), "stop_tokens": stop,
            "placeholder_token": placeholder, "exporter": exporter,
            "quantization": {"int4": {"method": "MatMulNBits", "bits": 4, "rounding": cfg.method, **{
                k: v for k, v in asdict(cfg).items() if k in ("block_size", "symmetric", "accuracy_level")}}}
            if "int4" in cfg.precisions else {},
            "embeddings_dtype": cfg.embeddings_dtype, "architecture": type(llm).__name__}
