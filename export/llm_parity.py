"""How close and how fast a bundle's decoder is against the torch model it came from.

`parity` runs a fixed prompt set through torch's greedy `generate` and through the ONNX
decoder: greedy-token agreement (whole answers equal, and the share of answer tokens equal up
to the first difference), and at every answer position, the ONNX decoder teacher-forced on
torch's answer so one early difference does not hide the rest: the logit cosine, the top-1
agreement and the KL divergence of the next-token distributions (nats). PROMPTS: the 20
program prompts the shipped model answers (agent.core.prompt.render_program on
benchmark-style questions, none of them in export/llm_quant.py's calibration set), then 20
ChatML questions (render, no audio). `speed` times the ONNX decoder: time to first
token for a prompt of about 120 tokens, decode tokens/s. Both feed docs/bundle.md and
`python -m export.llm_parity BUNDLE`.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from agent.answer.bundle import read_bundle
from agent.answer.decoder import GenerationConfig, OnnxDecoder
from agent.core.prompt import render, render_program

QUESTIONS = (
    "Where is the dog?", "What do you hear?", "Is the siren to my left or to my right?",
    "How far away is the music?", "Which sound is closer, the phone or the doorbell?",
    "How many sources are there?", "Is someone talking behind me?", "Where will the bird be if I turn left?",
    "What is the loudest sound?", "Is there a car nearby?", "Describe the scene in one sentence.",
    "When did the knocking start?", "Is the fan above or below me?", "Name every sound you hear.",
    "Can you hear water running?", "Which sound is farthest away?", "Is the alarm in front of me?",
    "What is the angle between the dog and the siren?", "Could this scene be real?",
    "If the music stopped, what would remain?",
)
#: Benchmark-style questions (data/lalm's phrasings), disjoint from CALIBRATION_QUESTIONS.
PROGRAM_QUESTIONS = (
    "Tell me which sound is the most distant.", "Give me the distance of a honk in metres.",
    "Suppose I turn 135 degrees to my left: will I hear some music on my left?",
    "I turn 135 degrees to my left. Where is the police siren now?",
    "If you turn 45 degrees to your right, where will the ambulance be?",
    "If that dog stopped, which sound would be the closest?", "Am I right that some music is far above me?",
    "Give the direction of the police siren as an azimuth in degrees, counter-clockwise from straight ahead.",
    "How many degrees counter-clockwise from my nose is the alarm?",
    "If you turn to face the beeping, where will the music be?",
    "Seen from my head, what angle separates the alarm clock and the clapping?",
    "Turn me towards the fan: left or right, how many degrees?", "Which sound needs your attention first?",
    "Do you hear the breaking glass? Where?", "At what height do you hear the fan?",
    "Does 'the running water ahead of you on the right, 0.9 m away' describe the scene?",
    "Is that people clapping behind me?", "How is the bird placed relative to the glass shattering?",
    "Count the sounds around me.", "How should I turn to look straight at an alarm going off? Left or right, "
    "and how many degrees?",
)
PROGRAM_PROMPTS = tuple(render_program(q).before for q in PROGRAM_QUESTIONS)
CHAT_PROMPTS = tuple(render(q).before + render(q).after for q in QUESTIONS)
PROMPTS = PROGRAM_PROMPTS + CHAT_PROMPTS


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def parity(dec: OnnxDecoder, model, prompts=PROMPTS, max_new_tokens: int = 16) -> dict:
    """Greedy agreement, logit cosine, top-1 agreement and KL(torch || onnx) in nats of `dec`
    against the torch causal LM `model` (plain; a LoRA merged)."""
    import torch  # noqa: PLC0415

    same, shared, cosines, top1, kl = 0, [], [], [], []
    for text in prompts:
        ids = dec.encode(text)
        with torch.no_grad():
            seq = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=sorted(dec.stop_ids),
                                 pad_token_id=0)[0].tolist()
            ref = model(torch.tensor([seq])).logits[0].numpy()
        answer = seq[len(ids):]
        got = dec.generate(dec.embed(ids), GenerationConfig(max_new_tokens=max_new_tokens)).tokens
        if answer and answer[-1] in dec.stop_ids:
            answer = answer[:-1]
        same += got == answer
        n = next((i for i, (a, b) in enumerate(zip(got, answer)) if a != b), min(len(got), len(answer)))
        shared.append(n / max(1, len(answer)))
        logits, _ = dec.forward(dec.embed(seq), dec.empty_cache())
        at = slice(len(ids) - 1, len(seq))
        cosines += [_cos(a, b) for a, b in zip(logits[at], ref[at])]
        top1 += list(logits[at].argmax(-1) == ref[at].argmax(-1))
        lp, lq = _log_softmax(ref[at]), _log_softmax(logits[at])
        kl += list((np.exp(lp) * (lp - lq)).sum(-1))
    return {"prompts": len(prompts), "greedy_equal": same / len(prompts), "tokens_before_first_difference":
            float(np.mean(shared)), "logit_cosine_min": min(cosines), "logit_cosine_mean": float(np.mean(cosines)),
            "top1_agreement": float(np.mean(top1)), "kl_mean": float(np.mean(kl)),
            "kl_p99": float(np.percentile(kl, 99)), "positions": len(cosines)}


def speed(dec: OnnxDecoder, prompt_tokens: int = 120, new_tokens: int = 64, repeats: int = 3) -> dict:
    """ttft_ms (prefill of a prompt_tokens prompt + the first token) and decode_tok_s, best of repeats."""
    text = " ".join(PROMPTS)
    ids = (dec.encode(text) * 4)[:prompt_tokens]
    stops, dec.stop_ids = dec.stop_ids, frozenset()  # decode the whole count
    try:
        runs = [dec.generate(dec.embed(ids), GenerationConfig(max_new_tokens=new_tokens)) for _ in range(repeats)]
    finally:
        dec.stop_ids = stops
    return {"prompt_tokens": len(ids), "ttft_ms": round(1000 * min(r.ttft_s for r in runs), 1),
            "decode_tok_s": round(max((new_tokens - 1) / r.decode_s for r in runs), 1),
            "provider": dec.provider}


def decoder_file(bundle, path, threads: int = 1) -> OnnxDecoder:
    """Another decoder file (an experiment, onnxruntime-genai's build) with the bundle's table
    and tokenizer."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    llm = read_bundle(bundle).llm
    tok = Tokenizer.from_file(str(llm.tokenizer))
    dec = OnnxDecoder(path, np.load(llm.embeddings, mmap_mode="r"), tok,
                      [tok.token_to_id(t) for t in llm.stop_tokens], tok.token_to_id(llm.placeholder_token), threads)
    dec.kv_shape = (llm.num_kv_heads, llm.head_dim)
    return dec


def torch_model(base: str | None = None, lalm: str | None = None):
    """The plain torch causal LM a bundle came from: a checkpoint's LLM with its LoRA merged, or
    a base LLM (None: the embedded default)."""
    if lalm is not None:
        from export.llm_export import merged_llm  # noqa: PLC0415
        from training.models.lalm import load_lalm  # noqa: PLC0415

        return merged_llm(load_lalm(lalm, base=base)[0])
    from training.models.llm import load_base_llm  # noqa: PLC0415

    return load_base_llm(base)[0]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--decoder", help="another decoder .onnx with the bundle's table and tokenizer (comparisons)")
    ap.add_argument("--parity", action="store_true", help="also compare with the torch model (needs torch)")
    ap.add_argument("--base", help="the torch model for --parity (default: the embedded SmolLM2)")
    ap.add_argument("--lalm", help="a language-model checkpoint for --parity (its LoRA merged), e.g. "
                                   "training/assets/lalm: what the bundle was exported from")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    dec = (OnnxDecoder.from_bundle(a.bundle, a.precision, a.threads) if not a.decoder
           else decoder_file(a.bundle, a.decoder, a.threads))
    out = {"load_s": round(time.perf_counter() - t0, 2), "threads": a.threads, **speed(dec)}
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if a.parity:
        out.update(parity(dec, torch_model(a.base, a.lalm)))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
