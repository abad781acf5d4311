"""`binaura train align|sft|parse` and `binaura ask`: the audio-language model's command line.

`ask --model` answers through torch (training's models); `ask --bundle` through an edge bundle
(agent/answer/bundle_answerer.py: its ONNX decoder and its encoder, no torch on that path).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from agent.core.errors import BinauraError

FUSION_CHOICES = ("dense", "concat", "spatial", "semantic")


def _ensure_data(args) -> Path:
    """The training dataset, synthesized there (with its questions) when it is empty."""
    data = Path(args.data)
    if not (data / "scenes.jsonl").exists():
        if not args.scenes:
            raise BinauraError(f"--data {data}: no scenes.jsonl; pass --scenes N to synthesize N training scenes "
                               f"(with their questions) there first")
        from training.synth.build import build_dataset  # noqa: PLC0415
        from training.synth.config import preset  # noqa: PLC0415

        build_dataset(data, preset("train"), args.scenes, args.synth_seed, with_qa=True, workers=args.workers,
                      progress=not args.quiet)
    return data


def _cache_for(args) -> Path:
    """The dataset's encoder-output cache, built there when missing."""
    from training.recipes.lalm_cache import build_encoder_cache  # noqa: PLC0415

    data = _ensure_data(args)
    cache = Path(args.cache) if args.cache else data / ("encoder-outputs-mono" if args.mono else "encoder-outputs")
    if not (cache / "meta.json").exists():
        # the encoder runs where the language model will train (--device; auto: CUDA when present)
        build_encoder_cache(data, cache, args.encoder, mono=args.mono, progress=not args.quiet,
                            device=args.device or "auto")
    return cache


def cmd_train_lalm(args) -> int:
    from training.models.lalm import LalmConfig  # noqa: PLC0415
    from training.models.projector import ProjectorConfig  # noqa: PLC0415
    from training.recipes.lalm import LalmTrainConfig, train_lalm  # noqa: PLC0415

    stage = args.train
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr),
                                   ("grad_accum", args.grad_accum), ("eval_every", args.eval_every),
                                   ("val_clips", args.val_clips), ("seed", args.seed), ("threads", args.threads),
                                   ("device", args.device)) if v is not None}
    if getattr(args, "rename", False):
        overrides["rename"] = True
    if getattr(args, "rewordings", False):
        overrides["rewordings"] = True
    if stage == "align" and args.lr is None:
        overrides["lr"] = 1e-3  # a fresh projector alone takes a larger step
    cfg = dataclasses.replace(LalmTrainConfig(stage=stage), **overrides).validate()
    projector = ProjectorConfig(fusion=args.fusion, n_tokens=args.tokens)
    model_cfg = LalmConfig(base=args.base, projector=projector, audio_tokens=not (args.no_audio or args.cascade),
                           audio_input="mono" if args.mono else "binaural",
                           heard_line=args.cascade or args.heard,
                           lora_r=args.lora_r)
    from training.recipes.distributed import init_distributed  # noqa: PLC0415

    dist = init_distributed(cfg.device)  # under `accelerate launch`: one process of several
    with dist.main_first():  # a missing dataset or cache is built once, by rank 0; the others then find it
        # the parse stage (program-aided model) reads the questions alone: no encoder outputs
        cache = None if stage == "parse" else _cache_for(args)
        if cache is None:
            _ensure_data(args)
    t0 = time.perf_counter()
    model = train_lalm(args.data, cache, args.out, cfg, model_cfg, init=args.init, resume=args.resume,
                       progress=not args.quiet)
    print(f"{stage}: {time.perf_counter() - t0:.0f} s; model -> {model}; loss curves -> {Path(args.out) / 'loss.png'}")
    return 0


def add_train_parsers(t) -> None:
    """`train align` and `train sft` under the `train` subcommand."""
    for stage, text in (("align", "stage 2: the projector alone learns to describe scenes (metadata descriptions)"),
                        ("sft", "stage 3: LoRA + projector on the hierarchical QA, answers in sentences"),
                        ("parse", "the program-aided model: LoRA on the QA's questions, each written as a program "
                                  "that the answer programs run on what the encoder heard (docs/lalm.md)")):
        s = t.add_parser(stage, help=text)
        s.add_argument("--data", required=True, help="training dataset with qa.jsonl (synthesized there with "
                                                     "--scenes N when it has no scenes.jsonl)")
        s.add_argument("--scenes", type=int, help="scenes to synthesize when --data is empty")
        s.add_argument("--synth-seed", type=int, default=1)
        s.add_argument("--workers", type=int, help="processes for synthesis")
        s.add_argument("--cache", help="encoder-output cache (default: DATA/encoder-outputs[-mono])")
        s.add_argument("--encoder", help="encoder checkpoint (default: the shipped training/assets/encoder_small.pt)")
        s.add_argument("--out", required=True, help="run folder: model/, checkpoints/, history.json, loss.png")
        s.add_argument("--base", help="base LLM: a Hugging Face causal LM folder or a name in the local HF cache "
                                      "(default: the embedded SmolLM2-135M-Instruct)")
        s.add_argument("--init", help="an earlier stage's model folder to start from (sft: the align run's model/)")
        s.add_argument("--fusion", choices=FUSION_CHOICES, default="dense", help="how the projector joins the "
                                                                                 "spatial and semantic streams")
        s.add_argument("--tokens", type=int, default=10, help="audio embeddings per clip in the prompt")
        s.add_argument("--lora-r", type=int, default=16, help="LoRA rank (align trains no LoRA)")
        s.add_argument("--mono", action="store_true", help="the mono baseline: the encoder hears the L+R average")
        s.add_argument("--cascade", action="store_true",
                       help="the cascade baseline: the encoder's decoded sources as text in the prompt, no audio")
        s.add_argument("--heard", action="store_true",
                       help="the prompt also carries the encoder's decoded sources as text, beside the audio "
                            "embeddings (the heard line)")
        s.add_argument("--no-audio", action="store_true", help="the text-only baseline: the same LLM, no audio")
        s.add_argument("--steps", type=int)
        s.add_argument("--batch-size", type=int)
        s.add_argument("--grad-accum", type=int)
        s.add_argument("--lr", type=float)
        s.add_argument("--eval-every", type=int)
        s.add_argument("--val-clips", type=int)
        s.add_argument("--seed", type=int)
        s.add_argument("--threads", type=int)
        s.add_argument("--device", choices=("auto", "cpu", "cuda"))
        if stage == "parse":
            s.add_argument("--rename", action="store_true", help="also ask each question with other names for "
                                                                 "its classes (AudioSet's; training/qa/augment.py)")
            s.add_argument("--rewordings", action="store_true",
                           help="also ask each question once more in a wording written for training only: another "
                                "template of its task, some class names swapped (training/qa/rewording.py)")
        s.add_argument("--resume", action="store_true", help="continue OUT/checkpoints")
        s.add_argument("--quiet", action="store_true")
        s.set_defaults(func=cmd_train_lalm)


#: The shipped language model (docs/lalm.md): `--model default`, and `ask` without --model.
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "training" / "assets" / "lalm"


def model_folder(path: str | Path) -> Path | None:
    """A language-model checkpoint folder given as itself, as its run folder (RUN/model), or as
    `default` (the shipped one)."""
    p = DEFAULT_MODEL if str(path) == "default" else Path(path)
    for cand in (p, p / "model"):
        if (cand / "lalm.json").is_file():
            return cand
    return None


def is_program_model(folder: Path) -> bool:
    """Whether a language-model folder holds a program-aided model (it writes programs that the
    answer programs run on what the encoder heard), not one that answers in sentences."""
    try:
        return json.loads((Path(folder) / "lalm.json").read_text()).get("config", {}).get("output") == "program"
    except (OSError, ValueError) as e:
        raise BinauraError(f"{folder}: lalm.json unreadable ({e})") from e


def _bundle_answerer(args) -> tuple:
    """(answerer, the encoder's sample rate in Hz, what answered) for `ask --bundle`."""
    from agent.answer.bundle_answerer import BundleAnswerer  # noqa: PLC0415
    from export.bundle_setup import resolve_bundle  # noqa: PLC0415

    if args.model:
        raise BinauraError("--bundle and --model: pass one (a bundle holds its own language model and encoder)")
    folder = resolve_bundle(args.bundle)
    answerer = BundleAnswerer(folder, precision=args.precision, threads=args.threads)
    return answerer, answerer.hear.sample_rate_hz, f"{folder} ({answerer.writer.precision})"


def _default_answerer(args) -> tuple:
    """`ask` with neither --model nor --bundle: the default edge bundle where set-up built it
    (ONNX Runtime, no torch), else the shipped model through torch, saying why."""
    from export.bundle_setup import built_default_bundle  # noqa: PLC0415

    built = built_default_bundle()
    if built is not None:
        args.bundle = str(built)
        return _bundle_answerer(args)
    if built is None:
        print("binaura: the default edge bundle is not built (`make setup` builds it); answering through torch",
              file=sys.stderr)
    return _model_answerer(args)


def _model_answerer(args) -> tuple:
    """(answerer, the encoder's sample rate in Hz, what answered) for `ask [--model]` (torch)."""
    from training.eval.lalm_answerer import LalmAnswerer  # noqa: PLC0415

    if args.precision:
        raise BinauraError("--precision applies to --bundle (a bundle's decoders); --model runs the torch model")
    folder = model_folder(args.model or "default")
    if folder is None and not args.model:
        raise BinauraError(f"no language model at {DEFAULT_MODEL} (the shipped default is missing from this "
                           f"checkout): train one with `binaura train parse` and pass --model RUN/model")
    if folder is None:
        raise BinauraError(f"--model {args.model}: not a binaura language-model folder (no lalm.json)")
    if is_program_model(folder):
        from agent.answer.hearing import encoder_hearing  # noqa: PLC0415
        from agent.answer.programs import tracks_reply  # noqa: PLC0415
        from training.eval.program_answerer import ProgramAnswerer  # noqa: PLC0415

        hear = encoder_hearing()
        return ProgramAnswerer(folder, hear, fallback=tracks_reply), hear.sample_rate_hz, str(folder)
    answerer = LalmAnswerer(folder)
    return answerer, answerer.encoder.cfg.features.sample_rate_hz, str(folder)


def cmd_ask(args) -> int:
    from agent.core.cues import cue_limits  # noqa: PLC0415
    from agent.core.dataset import read_wav  # noqa: PLC0415
    from agent.core.predictor import Clip  # noqa: PLC0415
    from agent.core.scene import QAItem  # noqa: PLC0415

    options = [o.strip() for o in args.options.split("|")] if args.options else None
    item = QAItem("ask", "ask", "L1", "ask", args.question, options, "A" if options else "?")
    audio, rate = read_wav(args.audio)  # a missing or bad file is refused before any model loads
    cues = cue_limits(audio, rate)  # whether it can carry front/back and elevation (agent/core/cues.py)
    if args.bundle:
        answerer, model_rate, model = _bundle_answerer(args)
    elif args.model:
        answerer, model_rate, model = _model_answerer(args)
    else:
        answerer, model_rate, model = _default_answerer(args)
    if rate != model_rate:
        print(f"binaura: {args.audio} is {rate} Hz; resampled to {model_rate} Hz "
              f"(below 32 kHz the pinna cues for front/back and elevation are gone)", file=sys.stderr)
    t0 = time.perf_counter()
    clip = Clip(Path(args.audio).stem, audio, rate)
    text = answerer.answer(clip, item)
    seconds = time.perf_counter() - t0
    heard = answerer.heard_sources(clip)
    if args.json:
        program = getattr(answerer, "programs", {}).get(item.id)  # a program-aided model's program
        print(json.dumps({"question": args.question, "options": options, "answer": text, "seconds": round(seconds, 3),
                          "model": model, **({"program": program} if program is not None else {}),
                          "heard": [dataclasses.asdict(s) for s in heard], "cues": cues.to_json()}))
        return 0
    print(text)
    if cues.limited:
        print(cues.note())
    if args.verbose:
        from agent.core.prompt import heard_line  # noqa: PLC0415

        program = getattr(answerer, "programs", {}).get(item.id)
        print(f"({heard_line(heard)}{f' Program: {program}.' if program else ''} Answered in {seconds:.2f} s.)")
    return 0


def add_ask_parser(sub) -> None:
    a = sub.add_parser("ask", help="ask the audio-language model about a binaural recording")
    a.add_argument("question")
    a.add_argument("--audio", required=True, help="binaural wav (left, right), any rate >= 16 kHz")
    a.add_argument("--model", help="language-model folder (RUN/model from `binaura train parse|sft`) or default "
                                    "(the shipped one), run through torch; without --model and --bundle: the "
                                    "default edge bundle where set-up built it, else the shipped model")
    a.add_argument("--bundle", help="an edge bundle folder (`binaura export bundle`), or default (the one set-up "
                                    "builds): its encoder hears, its ONNX decoder writes the program; no torch")
    a.add_argument("--precision", choices=("int4", "fp32"), help="with --bundle: the decoder (default: int4 "
                                                                  "where the bundle has it)")
    a.add_argument("--threads", type=int, default=1, help="with --bundle: ONNX Runtime threads")
    a.add_argument("--options", help="choices separated by |, e.g. 'left|right|behind'")
    a.add_argument("--json", action="store_true", help="the structured answer as JSON")
    a.add_argument("--verbose", action="store_true", help="also what the encoder heard")
    a.set_defaults(func=cmd_ask)
