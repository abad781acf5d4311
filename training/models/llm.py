"""The base language model of the spatial LALM: the embedded default, any HF causal LM, tiny variants.

`load_base_llm()` with no name gives the embedded default, SmolLM2-135M-Instruct
(fetched and converted once at set-up by training.models.llm_setup); a name or
path gives any Hugging Face causal LM, read from a local folder or from the
local Hugging Face cache only: nothing downloads at run time, weights load only
from safetensors, no remote code runs. Tiny random variants (`save_tiny_llm`,
`lalm_tiny_base`) go through the same loader, so tests run the real code path.

Padding: SmolLM2 pads with `<|im_end|>`, its end-of-turn (eos) token. A pad
equal to eos lets a collator that masks padding by token id also mask the
answer's stop token, and the model never learns to stop; so load_base_llm
pads with a special token distinct from eos (`<|endoftext|>` for SmolLM2, id
0; Qwen2.5 already ships one) and falls back to eos only where the vocabulary
has none (collators should mask by attention_mask regardless). The chat
template is left exactly as the model ships it; padding_side is the model's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from agent.core.errors import BinauraError
from training.models.llm_setup import DEFAULT_LLM_NAME, default_llm_dir, ensure_default_llm

__all__ = ["DEFAULT_LLM_NAME", "PAD_CANDIDATES", "check_llm_fingerprint", "default_llm_dir",
           "ensure_default_llm", "lalm_tiny_base", "llm_fingerprint", "load_base_llm", "save_tiny_llm"]

PAD_CANDIDATES = ("<|endoftext|>", "<pad>", "<|pad|>")


def load_base_llm(name_or_path: str | os.PathLike | None = None,
                  dtype: torch.dtype = torch.float32) -> tuple:
    """(model in eval mode, tokenizer with a pad token) from the default, a local folder or the
    local Hugging Face cache (safetensors only; no remote code; no network)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    if name_or_path is None:
        name_or_path = ensure_default_llm()
    where, s = Path(name_or_path).expanduser(), str(name_or_path)
    if not where.exists():
        if s.startswith((".", "/", "~")) or s.count("/") > 1 or s.endswith(".gguf"):
            raise BinauraError(f"{s}: no such model folder")
        where = _hub_snapshot(s)
    if where.is_file():
        hint = (f"convert it once: python -m training.models.llm_setup --convert {where} --out DIR"
                if where.suffix == ".gguf" else "pass the model's folder")
        raise BinauraError(f"{where}: a file, not a Hugging Face model folder; {hint}")
    if not (where / "config.json").is_file():
        raise BinauraError(f"{where}: not a Hugging Face model folder (no config.json)")
    if not any(where.glob("*.safetensors")):
        raise BinauraError(f"{where}: no .safetensors weights (binaura never loads pickled "
                           ".bin/.pt weights); re-save the model with safetensors")
    try:
        tok = AutoTokenizer.from_pretrained(where, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype=dtype,
                                                     use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BinauraError(f"{s}: could not load a causal LM from {where}: {why}") from e
    if len(tok) > model.get_input_embeddings().num_embeddings:
        raise BinauraError(f"{s}: the tokenizer has {len(tok)} tokens, the model's embedding "
                           f"table only {model.get_input_embeddings().num_embeddings}")
    _set_pad(tok, model)
    return model.eval(), tok


def _hub_snapshot(name: str) -> Path:
    """The local snapshot folder of a Hugging Face model id, found without any network call.

    A hub id never reaches from_pretrained: even with local_files_only, huggingface_hub 2.x
    builds request headers that fetch a registry from huggingface.co unless HF_HUB_OFFLINE
    was set before it was imported (found here, 2026-12). Only its cache lookup is used.
    """
    from huggingface_hub import constants, try_to_load_from_cache  # noqa: PLC0415

    try:
        hit = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid hub id
        hit = None
    if isinstance(hit, str):
        return Path(hit).parent
    raise BinauraError(
        f"{name}: not found in the local Hugging Face cache ({constants.HF_HUB_CACHE}), and nothing "
        f"is downloaded at run time. Fetch it once where there is network (`hf download {name}`; "
        f"safetensors weights), or pass a local folder; the embedded default needs no name "
        f"(`python -m training.models.llm_setup --ensure`).")


def _set_pad(tok, model) -> None:
    """Pad with a special token distinct from eos (see the module docstring)."""
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        vocab = tok.get_vocab()
        free = [c for c in PAD_CANDIDATES if c in vocab and vocab[c] != tok.eos_token_id]
        tok.pad_token = free[0] if free else tok.eos_token
    model.generation_config.pad_token_id = tok.pad_token_id


def llm_fingerprint(model, tokenizer) -> dict:
    """What identifies a base LLM; LoRA/projector checkpoints store it and check it on load.

    `embedding_sha256` hashes the input-embedding table rounded to bfloat16, so it tells apart
    two bases of one shape (base vs instruct, GGUF vs upstream weights) yet reads the same
    whether the model was loaded in float32 or bfloat16 (float32 -> bfloat16 rounding is exact
    and deterministic). Works on a peft-wrapped model too.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config.get_text_config()
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    emb = base.get_input_embeddings().weight.detach().to("cpu", torch.bfloat16).contiguous()
    return {
        "architecture": type(base).__name__, "model_type": cfg.model_type,
        "hidden_size": cfg.hidden_size, "num_layers": cfg.num_hidden_layers,
        "vocab_size": cfg.vocab_size,
        "tokenizer_vocab_sha256": hashlib.sha256(json.dumps(vocab).encode()).hexdigest(),
        "embedding_sha256": hashlib.sha256(emb.view(torch.int16).numpy().tobytes()).hexdigest(),
    }


def check_llm_fingerprint(expected: dict, model, tokenizer, what: str = "checkpoint") -> None:
    """Raise BinauraError naming every way `model` differs from the base `expected` was made for."""
    actual = llm_fingerprint(model, tokenizer)
    bad = [f"{k}: {v!r} expected, {actual.get(k)!r} loaded" for k, v in expected.items() if actual.get(k) != v]
    if bad:
        raise BinauraError(f"{what} was made for another base LLM ({expected.get('architecture')}); "
                           "load it with the base it was trained on:\n" + "\n".join(f"  - {b}" for b in bad))


def save_tiny_llm(out_dir: str | os.PathLike, arch: str = "llama", seed: int = 0, head_dim: int = 8) -> Path:
    """A tiny random causal LM + the tiny tokenizer, saved as a normal Hugging Face folder.

    arch "llama" (SmolLM2's shape: tied embeddings, grouped KV heads) or "qwen2"; 4 attention
    heads of `head_dim` (ONNX Runtime's fused attention needs a multiple of 16).
    """
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, Qwen2Config  # noqa: PLC0415

    from training.models.tiny_tokenizer import build_tiny_tokenizer  # noqa: PLC0415

    tok = build_tiny_tokenizer()
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    shape = dict(vocab_size=len(tok), hidden_size=4 * head_dim, intermediate_size=8 * head_dim, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, **ids)
    if arch == "llama":
        cfg = LlamaConfig(tie_word_embeddings=True, **shape)
    elif arch == "qwen2":
        cfg = Qwen2Config(tie_word_embeddings=False, **shape)
    else:
        raise BinauraError(f"tiny LLM arch {arch!r}: allowed 'llama', 'qwen2'")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.generation_config = GenerationConfig(**ids)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def lalm_tiny_base(tmp_dir: str | os.PathLike, arch: str = "llama") -> tuple:
    """(model, tokenizer) of a tiny random base LLM, loaded through load_base_llm like a real one."""
    return load_base_llm(save_tiny_llm(Path(tmp_dir) / f"tiny-{arch}", arch))


