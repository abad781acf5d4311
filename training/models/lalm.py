"""The spatial audio-language model: the frozen encoder's frame outputs -> the hybrid projector
-> n audio embeddings placed in the prompt (agent.core.prompt) of a causal LM with LoRA.

A batch holds token ids where the prompt's audio slot is filled with `n_tokens` placeholder
positions (`audio_mask`); the forward pass embeds the tokens and writes the projector's
embeddings over those positions (LLaVA's way), so one code path serves training (right
padding, loss on the answer only) and generation (left padding, KV cache).

Checkpoints are a folder: `weights.safetensors` (the projector and the LoRA weights, fp16;
never pickle) and `lalm.json` (the config, the base LLM's fingerprint, the encoder's
checkpoint SHA-256, the template version). Loading refuses another base LLM, template or
vocabulary with a message naming each difference.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from agent.core.dataset import write_json
from agent.core.errors import BinauraError
from agent.core.outdir import OutputKind, output_folder
from agent.core.prompt import IM_END, TEMPLATE_VERSION, answer_text, render, render_program
from training.models.llm import check_llm_fingerprint, llm_fingerprint, load_base_llm
from training.models.projector import AudioProjector, ProjectorConfig

LALM_FORMAT = "binaura-lalm-v1"
LALM_KIND = OutputKind("lalm", manifest="lalm.json", names=("weights.safetensors", "*.png", "history.json"))
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
IGNORE = -100  # label of positions the loss skips
OUTPUTS = ("reply", "program")


@dataclass
class LalmConfig:
    """base: the base LLM (None: the embedded SmolLM2 default; else a name or path).
    audio_tokens: False gives the same LLM without audio (the text-only and cascade baselines).
    heard_line: the prompt also carries what the encoder decoded, as text (agent.core.prompt.
    heard_line): with audio_tokens, the full model's second view; without, the cascade baseline.
    audio_input: what the cached encoder outputs were computed from ("binaural", or "mono":
    the L+R average, the paper's mono baseline); recorded so a cache of the other kind is refused.
    lora_r: 0 trains the projector only (the alignment stage).
    output: "reply" (the answer as a sentence) or "program" (program-aided: the question alone,
    no audio, in; a program for agent/qa/programs.py out)."""

    base: str | None = None
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    audio_tokens: bool = True
    audio_input: str = "binaural"
    heard_line: bool = False
    output: str = "reply"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    template_version: str = TEMPLATE_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lora_targets"] = list(self.lora_targets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LalmConfig:
        d = dict(d)
        if "cascade" in d:  # its name before the heard line joined the full model
            d["heard_line"] = bool(d.pop("cascade")) or bool(d.get("heard_line"))
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise BinauraError(f"language-model config: unknown key(s) {sorted(unknown)}")
        d["projector"] = ProjectorConfig.from_dict(d.get("projector", {}))
        d["lora_targets"] = tuple(d.get("lora_targets", DEFAULT_LORA_TARGETS))
        if d.get("audio_input", "binaural") not in ("binaural", "mono"):
            raise BinauraError(f"audio_input must be 'binaural' or 'mono', got {d['audio_input']!r}")
        return cls(**d).validate()

    def validate(self) -> LalmConfig:
        if self.output not in OUTPUTS:
            raise BinauraError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.output == "program" and (self.audio_tokens or self.heard_line):
            raise BinauraError("a program-aided model reads the question alone: audio_tokens and heard_line must be off")
        return self


class SpatialLALM(nn.Module):
    def __init__(self, llm, tokenizer, cfg: LalmConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.tokenizer = tokenizer
        for p in llm.parameters():
            p.requires_grad_(False)
        if cfg.lora_r > 0:
            from peft import LoraConfig, get_peft_model  # noqa: PLC0415

            names = {n.rsplit(".", 1)[-1] for n, _ in llm.named_modules()}
            targets = [t for t in cfg.lora_targets if t in names]
            if not targets:
                raise BinauraError(f"none of the LoRA targets {list(cfg.lora_targets)} is a module of this base LLM")
            llm = get_peft_model(llm, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                                 target_modules=targets, bias="none", task_type="CAUSAL_LM"))
        self.llm = llm
        hidden = self.base.config.get_text_config().hidden_size
        if cfg.projector.out_dim != hidden:
            cfg.projector.out_dim = hidden  # the projector writes the LLM's own embedding size
        self.projector = AudioProjector(cfg.projector) if cfg.audio_tokens else None
        self.placeholder_id = tokenizer.pad_token_id
        self.stop_id = tokenizer.convert_tokens_to_ids(IM_END)
        if self.stop_id is None or self.stop_id == tokenizer.unk_token_id:
            raise BinauraError(f"the base LLM's tokenizer has no {IM_END} token; the prompt template is ChatML")

    @property
    def base(self):
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    @property
    def n_audio(self) -> int:
        return self.cfg.projector.n_tokens if self.cfg.audio_tokens else 0

    # -- tokens ------------------------------------------------------------------------------
    def encode(self, question: str, options: list[str] | None, answer: str | None = None,
               context: str | None = None) -> dict:
        """One example's token ids, audio mask and labels (loss on the answer and its end-of-turn).
        context: text put before the question (the heard line, `cfg.heard_line`)."""
        if self.cfg.output == "program":
            p = render_program(question)
        else:
            p = render(question if context is None else f"{context}\n{question}", options)
        tok = self.tokenizer
        before = tok(p.before, add_special_tokens=False)["input_ids"]
        after = tok(p.after, add_special_tokens=False)["input_ids"]
        prompt = before + [self.placeholder_id] * self.n_audio + after
        audio = [False] * len(before) + [True] * self.n_audio + [False] * len(after)
        ex = {"input_ids": prompt, "audio_mask": audio}
        if answer is not None:
            ans = tok(answer_text(answer), add_special_tokens=False)["input_ids"]
            ex = {"input_ids": prompt + ans, "audio_mask": audio + [False] * len(ans),
                  "labels": [IGNORE] * len(prompt) + ans}
        return ex

    def collate(self, examples: list[dict], left_pad: bool = False) -> dict:
        """Pad a list of `encode` outputs (plus their float features) into tensors."""
        n = max(len(e["input_ids"]) for e in examples)
        pad = self.tokenizer.pad_token_id

        def padded(seq, value):
            fill = [value] * (n - len(seq))
            return fill + list(seq) if left_pad else list(seq) + fill

        batch = {"input_ids": torch.tensor([padded(e["input_ids"], pad) for e in examples]),
                 "attention_mask": torch.tensor([padded([1] * len(e["input_ids"]), 0) for e in examples]),
                 "audio_mask": torch.tensor([padded(e["audio_mask"], False) for e in examples])}
        if all("labels" in e for e in examples):
            batch["labels"] = torch.tensor([padded(e["labels"], IGNORE) for e in examples])
        if self.n_audio:
            for k in ("spatial", "semantic", "seld"):
                batch[k] = torch.stack([torch.as_tensor(e[k], dtype=torch.float32) for e in examples])
        return batch

    # -- forward -----------------------------------------------------------------------------
    def embed(self, input_ids, audio_mask, spatial=None, semantic=None, seld=None) -> torch.Tensor:
        emb = self.llm.get_input_embeddings()(input_ids)
        if self.projector is not None:
            audio = self.projector(spatial, semantic, seld).to(emb.dtype)  # (B, n, H)
            if int(audio_mask.sum()) != audio.shape[0] * audio.shape[1]:
                raise BinauraError(f"each example needs {self.n_audio} audio positions in its prompt")
            emb = emb.masked_scatter(audio_mask[..., None], audio)
        return emb

    def forward(self, input_ids, attention_mask, audio_mask, labels=None, spatial=None, semantic=None, seld=None):
        emb = self.embed(input_ids, audio_mask, spatial, semantic, seld)
        return self.llm(inputs_embeds=emb, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def greedy_kwargs(self, examples: list[dict], max_new_tokens: int = 32) -> dict:
        """The base LLM's `generate` arguments for greedy answers to prompts from `encode` (no
        answer given), batched, left-padded (what `generate` and a streaming caller share)."""
        batch = self.collate(examples, left_pad=True)
        emb = self.embed(batch["input_ids"], batch["audio_mask"], batch.get("spatial"), batch.get("semantic"),
                         batch.get("seld"))
        return dict(inputs_embeds=emb, attention_mask=batch["attention_mask"], do_sample=False,
                    max_new_tokens=max_new_tokens, eos_token_id=self.stop_id, pad_token_id=self.tokenizer.pad_token_id)

    @torch.no_grad()
    def generate(self, examples: list[dict], max_new_tokens: int = 32) -> list[str]:
        """Greedy answers to prompts from `encode` (no answer given), batched, left-padded."""
        out = self.llm.generate(**self.greedy_kwargs(examples, max_new_tokens))
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in out]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint holds: the projector's and the LoRA weights."""
        state = {}
        if self.projector is not None:
            state.update({f"projector.{k}": v for k, v in self.projector.state_dict().items()})
        if self.cfg.lora_r > 0:
            from peft import get_peft_model_state_dict  # noqa: PLC0415

            state.update({f"lora.{k}": v for k, v in get_peft_model_state_dict(self.llm).items()})
        return state


def save_lalm(model: SpatialLALM, out: str | os.PathLike, **meta) -> Path:
    """Write the checkpoint folder (weights as fp16 safetensors + lalm.json), replaced atomically."""
    from safetensors.torch import save_file  # noqa: PLC0415

    with output_folder(out, LALM_KIND) as tmp:
        tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.trainable_state().items()}
        save_file(tensors, str(tmp / "weights.safetensors"))
        write_json(tmp / "lalm.json", {"format": LALM_FORMAT, "config": model.cfg.to_dict(),
                                       "llm": llm_fingerprint(model.llm, model.tokenizer), **meta})
    return Path(out)


def read_lalm_meta(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        meta = json.loads((path / "lalm.json").read_text())
    except (OSError, ValueError) as e:
        raise BinauraError(f"{path}: not a binaura language-model checkpoint (lalm.json unreadable: {e})") from e
    if meta.get("format") != LALM_FORMAT:
        raise BinauraError(f"{path}: expected format {LALM_FORMAT}, found {meta.get('format')!r}")
    version = meta.get("config", {}).get("template_version")
    if version != TEMPLATE_VERSION:
        raise BinauraError(f"{path}: trained with prompt template {version!r}; this binaura writes "
                           f"{TEMPLATE_VERSION!r}: retrain it, or use the binaura that made it")
    return meta


def load_lalm(path: str | os.PathLike, base: str | None = None) -> tuple[SpatialLALM, dict]:
    """A checkpoint folder -> (model in eval mode, its lalm.json). base overrides the recorded
    base LLM's name or path (same weights elsewhere); the fingerprint must still match."""
    path = Path(path)
    meta = read_lalm_meta(path)
    cfg = LalmConfig.from_dict(meta["config"])
    llm, tok = load_base_llm(base if base is not None else cfg.base)
    check_llm_fingerprint(meta["llm"], llm, tok, what=str(path))
    model = SpatialLALM(llm, tok, cfg)
    load_trainable(model, path)
    return model.eval(), meta


def load_trainable(model: SpatialLALM, path: str | os.PathLike) -> None:
    """A checkpoint folder's projector (and LoRA, where the model has LoRA and the checkpoint
    holds it) into `model`: how a checkpoint loads, how a stage starts from the one before
    it, and how a training run resumes."""
    from peft import set_peft_model_state_dict  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    path = Path(path)
    read_lalm_meta(path)
    state = load_file(str(path / "weights.safetensors"))
    if model.projector is not None:
        proj = {k.removeprefix("projector."): v.float() for k, v in state.items() if k.startswith("projector.")}
        if not proj:
            raise BinauraError(f"{path}: holds no projector weights")
        model.projector.load_state_dict(proj)
    lora = {k.removeprefix("lora."): v.float() for k, v in state.items() if k.startswith("lora.")}
    if lora and model.cfg.lora_r > 0:
        res = set_peft_model_state_dict(model.llm, lora)
        if getattr(res, "unexpected_keys", None):
            raise BinauraError(f"{path}: LoRA weights that this base LLM has no place for: {res.unexpected_keys[:3]}")
