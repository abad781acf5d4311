"""The language model on the device: an ONNX decoder with an explicit KV cache, numpy, no torch.

The decoder takes `inputs_embeds` (batch 1, S, hidden), `attention_mask` (1, past + S),
`position_ids` where the graph has it, and per layer `past_key_values.N.key/value`
(1, kv_heads, past, head_dim); it returns `logits` (1, S, vocab) and `present.N.key/value`
(1, kv_heads, past + S, head_dim). Every graph export/llm_export.py writes follows it (its own
builder's, export/llm_graph.py, with no position_ids; torch's exporter's), as does
onnxruntime-genai's builder with `exclude_embeds=true`. The token-embedding
table lives beside it as a .npy, so a prompt can mix text tokens with given rows: the audio
embeddings a projector makes are written over placeholder positions, as
training/models/lalm.py (`SpatialLALM.embed`) does.

`generate` prefills the prompt once, then feeds one token a step through the cache; greedy
(temperature 0) or sampled (temperature, top-p, seed), stopping at a stop token or a token
limit, and hands every new token with its text to a callback as it comes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.answer.bundle import Bundle, LlmFiles, read_bundle
from agent.core.errors import BinauraError, ConfigError, check_numbers

OnToken = Callable[[int, str], None]


@dataclass
class GenerationConfig:
    """max_new_tokens: the token limit (the stop token not counted). temperature: 0 is greedy.
    top_p: sample from the smallest set of tokens whose probability reaches it. seed: the
    sampler's seed (None: a fresh one)."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self):
        problems: list[str] = []
        check_numbers(self, ("max_new_tokens",), lambda v: isinstance(v, int) and v >= 1, "an integer >= 1", problems)
        check_numbers(self, ("temperature",), lambda v: v >= 0, ">= 0", problems)
        check_numbers(self, ("top_p",), lambda v: 0 < v <= 1, "in (0, 1]", problems)
        if problems:
            raise ConfigError(problems, "generation config")


@dataclass
class Generation:
    """One answer: its tokens (stop token excluded), text, and timings in seconds."""

    tokens: list[int]
    text: str
    prompt_tokens: int
    stop_reason: str  # "stop" (a stop token) or "length" (the token limit)
    ttft_s: float  # prefill + the first token
    decode_s: float  # the remaining tokens
    logits: list[np.ndarray] = field(default_factory=list)  # per step, when asked for


class OnnxDecoder:
    """An ONNX causal-LM decoder + its embedding table + tokenizer (batch 1, CPU or CUDA)."""

    def __init__(self, decoder_path, embeddings: np.ndarray, tokenizer, stop_ids: Sequence[int],
                 placeholder_id: int, threads: int = 1, providers: Sequence[str] | None = None):
        import onnxruntime as ort  # noqa: PLC0415

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        if providers is None:  # the CUDA provider where onnxruntime-gpu has it (issue 23), else the CPU
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(decoder_path), opts, providers=list(providers))
        self.provider = self.session.get_providers()[0]
        ins = {i.name: i for i in self.session.get_inputs()}
        self.layers = sorted(int(n.split(".")[1]) for n in ins if n.startswith("past_key_values.") and n.endswith(".key"))
        if "inputs_embeds" not in ins or "attention_mask" not in ins or not self.layers:
            raise BinauraError(f"{decoder_path}: not a decoder taking inputs_embeds, attention_mask and "
                               f"past_key_values.N.key/value (inputs: {sorted(ins)})")
        self.embeddings = embeddings
        hidden = ins["inputs_embeds"].shape[-1]
        if isinstance(hidden, int) and hidden != embeddings.shape[1]:
            raise BinauraError(f"{decoder_path}: takes embeddings of {hidden}, the table has {embeddings.shape[1]}")
        kv = ins["past_key_values.0.key"]
        self.kv_dtype = np.float16 if "float16" in kv.type else np.float32
        self.embed_dtype = np.float16 if "float16" in ins["inputs_embeds"].type else np.float32
        self.kv_shape = (kv.shape[1], kv.shape[3])  # (kv heads, head dim); the caller may fix symbolic dims
        self.has_position_ids = "position_ids" in ins
        self.tokenizer = tokenizer
        self.stop_ids = frozenset(int(i) for i in stop_ids)
        self.placeholder_id = int(placeholder_id)
        self.out_names = ["logits"] + [f"present.{i}.{kv_}" for i in self.layers for kv_ in ("key", "value")]

    @classmethod
    def from_bundle(cls, bundle: Bundle | str, precision: str = "int4", threads: int = 1,
                    providers: Sequence[str] | None = None) -> OnnxDecoder:
        """Verify the bundle (agent.answer.bundle.read_bundle), then load its decoder."""
        b = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
        llm: LlmFiles | None = b.llm
        if llm is None:
            raise BinauraError(f"{b.root}: the bundle has no language model (no llm section)")
        if precision not in llm.decoders:
            raise BinauraError(f"{b.root}: no {precision} decoder; this bundle has {sorted(llm.decoders)}")
        from tokenizers import Tokenizer  # noqa: PLC0415

        tok = Tokenizer.from_file(str(llm.tokenizer))
        emb = np.load(llm.embeddings, mmap_mode="r")  # rows are read as tokens need them
        dec = cls(llm.decoders[precision], emb, tok, [tok.token_to_id(t) for t in llm.stop_tokens],
                  tok.token_to_id(llm.placeholder_token), threads, providers)
        dec.kv_shape = (llm.num_kv_heads, llm.head_dim)
        return dec

    # -- prompts -----------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens added (the template writes its own)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def embed(self, ids: Sequence[int], audio_mask: Sequence[bool] | None = None,
              audio: np.ndarray | None = None) -> np.ndarray:
        """(S, hidden) prompt embeddings: the table's rows for `ids`, with the rows of `audio`
        (n, hidden) written over the positions where `audio_mask` is true, in order."""
        ids = np.asarray(ids, np.int64)
        if ids.ndim != 1 or len(ids) == 0 or ids.min() < 0 or ids.max() >= self.embeddings.shape[0]:
            raise BinauraError(f"token ids must be a non-empty list in [0, {self.embeddings.shape[0]})")
        emb = np.asarray(self.embeddings[ids], np.float32)
        n_audio = 0 if audio_mask is None else int(np.sum(audio_mask))
        if audio is None and n_audio == 0:
            return emb
        audio = np.asarray(audio, np.float32)
        if audio_mask is None or audio.ndim != 2 or audio.shape != (n_audio, emb.shape[1]):
            raise BinauraError(f"audio embeddings {getattr(audio, 'shape', None)} must be (n, {emb.shape[1]}) "
                               f"with n = the {n_audio} audio positions in the prompt")
        emb[np.asarray(audio_mask, bool)] = audio
        return emb

    def prompt(self, before: str, audio: np.ndarray | None, after: str) -> tuple[list[int], list[bool], np.ndarray]:
        """(ids, audio_mask, embeddings) of `before` + audio rows + `after` (agent.core.prompt.render)."""
        a, b = self.encode(before), self.encode(after)
        n = 0 if audio is None else len(audio)
        ids, mask = a + [self.placeholder_id] * n + b, [False] * len(a) + [True] * n + [False] * len(b)
        return ids, mask, self.embed(ids, mask, audio)

    # -- the model ---------------------------------------------------------------------------
    def empty_cache(self) -> list[np.ndarray]:
        h, d = self.kv_shape
        return [np.zeros((1, h, 0, d), self.kv_dtype) for _ in range(2 * len(self.layers))]

    def forward(self, embeds: np.ndarray, cache: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """embeds (S, hidden) after `cache` (from `empty_cache` or a previous call) ->
        (logits (S, vocab) float32, the new cache)."""
        past = cache[0].shape[2]
        s = embeds.shape[0]
        feed = {"inputs_embeds": np.asarray(embeds, self.embed_dtype)[None],
                "attention_mask": np.ones((1, past + s), np.int64)}
        if self.has_position_ids:
            feed["position_ids"] = np.arange(past, past + s, dtype=np.int64)[None]
        for i, layer in enumerate(self.layers):
            feed[f"past_key_values.{layer}.key"], feed[f"past_key_values.{layer}.value"] = cache[2 * i], cache[2 * i + 1]
        out = self.session.run(self.out_names, feed)
        return out[0][0].astype(np.float32, copy=False), out[1:]

    def generate(self, embeds: np.ndarray, config: GenerationConfig | None = None,
                 on_token: OnToken | None = None, keep_logits: bool = False) -> Generation:
        """Answer after the prompt `embeds` (S, hidden). on_token(token id, its text) is called
        for each new token as it comes; the pieces join to the final text."""
        cfg = config or GenerationConfig()
        rng = np.random.default_rng(cfg.seed)
        t0 = time.perf_counter()
        logits, cache = self.forward(embeds, self.empty_cache())
        step = logits[-1]
        tokens: list[int] = []
        kept: list[np.ndarray] = []
        stream = _TextStream(self.tokenizer)
        reason, t_first = "length", None
        while len(tokens) < cfg.max_new_tokens:
            if keep_logits:
                kept.append(step.copy())
            tok = pick(step, cfg.temperature, cfg.top_p, rng)
            if t_first is None:
                t_first = time.perf_counter()
            if tok in self.stop_ids:
                reason = "stop"
                break
            tokens.append(tok)
            piece = stream.push(tok)
            if on_token is not None:
                on_token(tok, piece)
            if len(tokens) == cfg.max_new_tokens:
                break
            logits, cache = self.forward(self.embed([tok]), cache)
            step = logits[-1]
        t_end = time.perf_counter()
        t_first = t_end if t_first is None else t_first
        tail = stream.flush()
        if tail and on_token is not None:
            on_token(-1, tail)  # bytes held back at the end (an incomplete character)
        return Generation(tokens, stream.text, int(embeds.shape[0]), reason, t_first - t0, t_end - t_first, kept)


def pick(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """Greedy (temperature 0) or a sample from softmax(logits / temperature), nucleus top_p."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return int(rng.choice(len(p), p=p))


class _TextStream:
    """Token ids -> text pieces whose concatenation is the decoded text: byte-level BPE tokens
    may end inside a UTF-8 character, so a piece ending in U+FFFD waits for the next token."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = ""

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def push(self, tok: int) -> str:
        self.ids.append(tok)
        text = self.text
        if text.endswith("\ufffd") or not text.startswith(self.sent):
            return ""
        piece, self.sent = text[len(self.sent):], text
        return piece

    def flush(self) -> str:
        text = self.text
        piece = text[len(self.sent):] if text.startswith(self.sent) else ""
        self.sent = text
        return piece
