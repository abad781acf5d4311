"""`binaura bench speed --llm BUNDLE`: the language model's cost on this CPU, backends side by side.

Backends (each in its own fresh process, so that its peak RSS is its own; the same thread
count everywhere): torch fp32 (transformers, the LoRA merged), bitsandbytes NF4 through
transformers (bitsandbytes >= 0.45 runs on CPU; where it does not, the row says why), and
the bundle's ONNX Runtime decoders (fp32, int4). Per backend:

- ttft_ms: what the listener waits for before the first word: the shipped ONNX encoder on a
  5 s clip (agent/assets/encoder) + the prefill of a program prompt (render_program) + the
  first token, best of `repeats`;
- decode_tok_s: the following tokens (stop tokens ignored), best of `repeats`;
- peak_rss_mb: the process's peak resident memory with the encoder and that backend loaded;
- size_mb: the backend's files on disk (bitsandbytes quantises on load: its memory footprint);
- weights_mb_per_token: the weight bytes one decoding step reads, and with this machine's
  memory bandwidth (a numpy copy of a 512 MB array: bytes read + written per second) the
  decode speed that bandwidth allows (bandwidth_limit_tok_s) and the share reached.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from agent.core.prompt import render_program
from export.llm_parity import PROGRAM_QUESTIONS

BACKENDS = ("torch-fp32", "bnb-nf4", "onnxruntime-fp32", "onnxruntime-int4")
MB = 1024 * 1024


def memory_bandwidth_gbs(mbytes: int = 512, repeats: int = 5) -> float:
    """GB/s (1e9 bytes) of a numpy copy of an mbytes array, counting the read and the write; best of repeats."""
    src = np.ones(mbytes * MB // 8)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * src.nbytes / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def encoder_ms(threads: int, repeats: int = 3) -> float:
    """ms of the shipped ONNX encoder (features included) on one 5 s two-ear clip, best of repeats."""
    from agent.core.audio import CLIP_DURATION_S  # noqa: PLC0415
    from agent.localize.encoder import EncoderRuntime  # noqa: PLC0415

    rt = EncoderRuntime(threads=threads)
    rate = rt.features.sample_rate_hz
    base = np.random.default_rng(0).standard_normal(int(CLIP_DURATION_S * rate) + 30).astype(np.float32) * 0.05
    audio = np.stack([base[30:], base[:-30]])
    return 1e3 * min(_timed(lambda: rt.run_audio(audio, rate)) for _ in range(repeats))


def _onnx(bundle: str, precision: str, threads: int, new_tokens: int, repeats: int) -> dict:
    from agent.answer.bundle import read_bundle  # noqa: PLC0415
    from agent.answer.decoder import GenerationConfig, OnnxDecoder  # noqa: PLC0415

    llm = read_bundle(bundle).llm
    dec = OnnxDecoder.from_bundle(bundle, precision, threads)
    ids = dec.encode(render_program(PROGRAM_QUESTIONS[0]).before)
    dec.stop_ids = frozenset()  # decode the whole count
    runs = [dec.generate(dec.embed(ids), GenerationConfig(max_new_tokens=new_tokens)) for _ in range(repeats)]
    files = (llm.decoders[precision], llm.embeddings, llm.tokenizer)
    return {"prompt_tokens": len(ids), "prefill_ms": 1e3 * min(r.ttft_s for r in runs),
            "decode_tok_s": max((new_tokens - 1) / r.decode_s for r in runs),
            "size_mb": sum(Path(f).stat().st_size for f in files) / MB,
            "weights_mb_per_token": Path(llm.decoders[precision]).stat().st_size / MB}


def _torch(folder: str, nf4: bool, threads: int, new_tokens: int, repeats: int) -> dict:
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    torch.set_num_threads(threads)
    kw = {"dtype": torch.float32}
    if nf4:
        from transformers import BitsAndBytesConfig  # noqa: PLC0415

        kw.update(device_map="cpu", quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32))
    model = AutoModelForCausalLM.from_pretrained(folder, **kw).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    ids = torch.tensor([tok(render_program(PROGRAM_QUESTIONS[0]).before, add_special_tokens=False).input_ids])
    best_first, best_rate = float("inf"), 0.0
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model(ids, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            t1 = time.perf_counter()
            past = out.past_key_values
            for _ in range(new_tokens - 1):
                out = model(nxt, past_key_values=past, use_cache=True)
                past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            t2 = time.perf_counter()
            best_first, best_rate = min(best_first, t1 - t0), max(best_rate, (new_tokens - 1) / (t2 - t1))
    weights = {t.data_ptr(): t.numel() * t.element_size() for t in model.parameters()}  # tied: counted once
    size = (model.get_memory_footprint() if nf4 else
            sum(f.stat().st_size for f in Path(folder).iterdir() if f.suffix == ".safetensors"))
    return {"prompt_tokens": ids.shape[1], "prefill_ms": 1e3 * best_first, "decode_tok_s": best_rate,
            "size_mb": size / MB, "weights_mb_per_token": sum(weights.values()) / MB}


def run_backend(backend: str, bundle: str, folder: str | None, threads: int, new_tokens: int,
                repeats: int) -> dict:
    """One backend in this process (the worker): its figures and this process's peak RSS."""
    enc = encoder_ms(threads, repeats)
    if backend.startswith("onnxruntime-"):
        r = _onnx(bundle, backend.split("-", 1)[1], threads, new_tokens, repeats)
    elif backend in ("torch-fp32", "bnb-nf4"):
        r = _torch(folder, backend == "bnb-nf4", threads, new_tokens, repeats)
    else:
        raise ValueError(f"unknown backend {backend!r}: choose from {list(BACKENDS)}")
    r.update(encoder_ms=enc, ttft_ms=enc + r["prefill_ms"], peak_rss_mb=peak_rss_mb())
    return r


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: /proc's VmHWM, which starts afresh at exec
    (getrusage's ru_maxrss keeps the parent's peak across fork + exec: a worker started by a
    parent holding the torch model would report the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def merged_folder(out: Path, lalm: str | None, base: str | None) -> Path:
    """The torch backends' model: the checkpoint's LLM with its LoRA merged (or the base LLM),
    saved as safetensors with its tokenizer into `out`."""
    from export.bundle import load_source  # noqa: PLC0415
    from export.llm_export import merged_llm  # noqa: PLC0415

    model, tok, _ = load_source(base, lalm)
    merged_llm(model).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def bench_llm_speed(bundle: str, lalm: str | None = None, base: str | None = None, threads: int = 2,
                    new_tokens: int = 64, repeats: int = 3, backends=BACKENDS) -> dict:
    """Every backend in a fresh `python -m export.llm_speed` process; the machine's bandwidth here."""
    rows = {}
    with tempfile.TemporaryDirectory(prefix="binaura-llm-") as tmp:
        folder = merged_folder(Path(tmp), lalm, base) if any(not b.startswith("onnx") for b in backends) else None
        for backend in backends:
            cmd = [sys.executable, "-m", "export.llm_speed", backend, bundle, "--threads", str(threads),
                   "--new-tokens", str(new_tokens), "--repeats", str(repeats)] + (["--folder", str(folder)] if folder else [])
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            lines = p.stdout.strip().splitlines()
            if p.returncode == 0 and lines:
                rows[backend] = json.loads(lines[-1])
            else:
                why = (p.stderr.strip().splitlines() or ["no output"])[-1]
                rows[backend] = {"error": f"did not run on this machine: {why}"}
    bw = memory_bandwidth_gbs()
    for r in rows.values():
        if "weights_mb_per_token" in r:
            r["bandwidth_limit_tok_s"] = bw * 1e9 / (r["weights_mb_per_token"] * MB)
            r["bandwidth_share"] = r["decode_tok_s"] / r["bandwidth_limit_tok_s"]
    return {"bundle": str(bundle), "lalm": lalm, "threads": threads, "new_tokens": new_tokens,
            "memory_bandwidth_gbs": bw, "backends": rows}


def llm_speed_table(r: dict) -> str:
    lines = [f"language model: {r['threads']} threads, {r['new_tokens']} new tokens, memory bandwidth "
             f"{r['memory_bandwidth_gbs']:.1f} GB/s (numpy copy)", "",
             f"{'backend':<18} {'ttft ms':>8} {'(enc+prefill)':>14} {'tok/s':>7} {'RSS MB':>7} {'size MB':>8} "
             f"{'MB/token':>9} {'bw limit':>9} {'share':>6}"]
    for name, b in r["backends"].items():
        if "error" in b:
            lines.append(f"{name:<18} {b['error']}")
            continue
        lines.append(f"{name:<18} {b['ttft_ms']:>8.0f} {b['encoder_ms']:>6.0f}+{b['prefill_ms']:<7.0f} "
                     f"{b['decode_tok_s']:>7.1f} {b['peak_rss_mb']:>7.0f} {b['size_mb']:>8.1f} "
                     f"{b['weights_mb_per_token']:>9.1f} {b['bandwidth_limit_tok_s']:>9.0f} {b['bandwidth_share']:>6.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    import argparse  # noqa: PLC0415

    ap = argparse.ArgumentParser(description="one language-model backend's speed (a worker of bench_llm_speed)")
    ap.add_argument("backend", choices=BACKENDS)
    ap.add_argument("bundle")
    ap.add_argument("--folder", help="the merged torch model folder (torch backends)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    print(json.dumps(run_backend(a.backend, a.bundle, a.folder, a.threads, a.new_tokens, a.repeats)))


if __name__ == "__main__":
    main()
