"""The model registry: names and paths on the command line -> localizers and answerers.

`binaura bench`, `binaura demo` and the agent's commands all build models here (the CLI module
only parses arguments), so none of them imports another command's module.
"""

from __future__ import annotations

from pathlib import Path

from agent.core.errors import BinauraError

BASELINE_LOCALIZERS = ("gccphat", "chance", "oracle")
#: `--model encoder` (or no --model): the encoder shipped in agent/assets, run by ONNX Runtime.
BASELINE_ANSWERERS = ("chance", "text-only", "oracle", "perception-bound")
DEFAULT_LOCALIZER = "encoder"
#: an exported encoder's mirror options: (mirror_tta, mirror_mode), forced (agent.localize.mirror)
MIRROR_OPTIONS = {"mirror": (True, "mean"), "mirror-polar": (True, "polar"), "single": (False, None)}
#: an exported encoder's option: YAMNet may rename its sources, directions kept (agent.localize.relabel)
YAMNET_OPTION = "yamnet"
#: an exported encoder's option names=DIR: another exported encoder names its sources, directions
#: kept (agent.localize.namer)
NAMES_OPTION = "names="



def make_localizer(name: str, seed: int = 0):
    if name == "gccphat":
        from agent.localize.gccphat import GccPhatLocalizer  # noqa: PLC0415

        return GccPhatLocalizer()
    if name in ("chance", "oracle"):
        from training.eval import baselines  # noqa: PLC0415

        return baselines.ChanceLocalizer(seed) if name == "chance" else baselines.OracleLocalizer()
    base, _, tail = name.partition(":")
    opts = set(tail.split(":")) if tail else set()
    scales = {o for o in opts if o.startswith("scale=")}
    namers = {o for o in opts if o.startswith(NAMES_OPTION)}
    if (opts - scales - namers - {"fp16", YAMNET_OPTION, *MIRROR_OPTIONS} or len(opts & set(MIRROR_OPTIONS)) > 1
            or len(scales) > 1 or len(namers) > 1):
        base, opts, scales, namers = name, set(), set(), set()  # a path that itself holds a colon
    if namers and YAMNET_OPTION in opts:
        raise BinauraError(f"--model {name!r}: :yamnet and :names=DIR both rename the sources; expected one of them")
    precision = "fp16" if "fp16" in opts else "fp32"
    # mirror averaging: forced on (and how it combines) or off, else the export's own default (its manifest)
    mirror, mode = next((MIRROR_OPTIONS[o] for o in opts if o in MIRROR_OPTIONS), (None, None))
    # the listening head's size over the encoder's (agent.core.features), e.g. encoder:scale=1.2
    head_scale = 1.0
    if scales:
        from agent.core.features import check_head_scale  # noqa: PLC0415

        head_scale = check_head_scale(scales.pop()[len("scale="):], f"--model {name!r}: scale")
    tag = "".join(f":{o}" for o in sorted(opts))
    mirror_tag = "".join(f":{o}" for o in sorted(opts - {"fp16"}))  # precision is named apart for paths
    if base == "encoder":
        from agent.localize.encoder import EncoderLocalizer  # noqa: PLC0415

        return _renamed(EncoderLocalizer(precision=precision, mirror_tta=mirror, name=f"encoder{tag}",
                                         head_scale=head_scale, mirror_mode=mode), opts, namers, head_scale)
    path = Path(base)
    if path.is_file() and path.suffix in (".pt", ".pth") and not opts:
        from training.eval.torch_localizer import TorchEncoderLocalizer  # noqa: PLC0415

        return TorchEncoderLocalizer(path)
    if path.is_dir() or (path.is_file() and path.suffix == ".onnx"):
        from agent.localize.encoder import EncoderLocalizer  # noqa: PLC0415

        return _renamed(EncoderLocalizer(path, precision=precision, mirror_tta=mirror, mirror_mode=mode,
                                         name=f"onnx-{precision}{mirror_tag}:{path.name}",
                                         head_scale=head_scale), opts, namers, head_scale)
    raise BinauraError(f"--model {name!r}: expected encoder, one of {', '.join(BASELINE_LOCALIZERS)}, a training "
                       f"checkpoint (.pt) or an exported encoder (folder or .onnx); an exported encoder takes "
                       f":fp16 (its fp16 variant), one of :mirror, :mirror-polar or :single (left-right mirror "
                       f"averaging on, as a Cartesian mean or on the cone of confusion, or off; default: as its "
                       f"manifest says) and :scale=S (the listening head's size over KEMAR's, "
                       f"features warped to match), :yamnet (YAMNet renames the sources it hears, directions "
                       f"kept) or :names=DIR (the exported encoder in DIR names them, directions kept), e.g. "
                       f"encoder:single, encoder:scale=1.2, encoder:yamnet")


def _renamed(encoder, opts: set[str], namers: set[str], head_scale: float):
    """The encoder localizer as it is, or wrapped so that YAMNet (:yamnet, agent.localize.relabel)
    or another exported encoder (:names=DIR, agent.localize.namer) names its sources; its name
    (which already shows the option) is kept. :yamnet fails with YamnetRuntime's error, naming
    the set-up command, when YAMNet is not set up; :names=DIR with the runtime's, naming DIR."""
    if namers:
        from agent.localize.encoder import EncoderLocalizer  # noqa: PLC0415
        from agent.localize.namer import NamedLocalizer  # noqa: PLC0415

        folder = next(iter(namers))[len(NAMES_OPTION):]
        if not folder:
            raise BinauraError(f"{encoder.name}: :names= needs the folder of an exported encoder (the namer), "
                               f"e.g. encoder:names=out/namer")
        folder = Path(folder)
        # the namer runs as its manifest says (mirror, fp32); only the listening head's size is shared
        return NamedLocalizer(encoder, EncoderLocalizer(folder, head_scale=head_scale, name=f"namer:{folder.name}"),
                              name=encoder.name)
    if YAMNET_OPTION not in opts:
        return encoder
    from agent.localize.relabel import YamnetRelabelLocalizer  # noqa: PLC0415

    return YamnetRelabelLocalizer(encoder, name=encoder.name)


#: options after a program-aided model's path: PATH:mono, and how the sound-word table mends its
#: programs (agent/qa/resolve.py): PATH:names (every unsupported class argument, the default),
#: PATH:copies (only a copied name), PATH:plain (not at all); PATH:unchecked: the parser's first
#: program always, without checked decoding (agent/qa/check.py); PATH:grounded / PATH:ungrounded:
#: whether an ambiguous name is settled by what was heard (agent/qa/resolve.py, SoundWords.ground)
PROGRAM_OPTIONS = ("mono", "names", "copies", "plain", "unchecked", "grounded", "ungrounded")


def make_answerer(name: str, ds, seed: int = 0):
    from training.eval import baselines  # noqa: PLC0415

    if name == "chance":
        return baselines.ChanceAnswerer(seed)
    if name == "oracle":
        return baselines.OracleAnswerer()
    if name == "text-only":
        return baselines.TextOnlyAnswerer().fit(ds.qa)
    if name.split(":")[0] == "perception-bound":
        from agent.answer.hearing import encoder_hearing  # noqa: PLC0415

        return baselines.PerceptionBoundAnswerer(encoder_hearing(name.partition(":")[2] or None), name)
    if name.startswith("bundle:"):  # the edge bundle (docs/bundle.md): its encoder hears, its decoder writes
        from agent.answer.bundle_answerer import BundleAnswerer, parse_model_name  # noqa: PLC0415
        from export.bundle_setup import resolve_bundle  # noqa: PLC0415

        folder, precision = parse_model_name(name)
        # no fallback: every question goes through its program, as in bench qa
        return BundleAnswerer(resolve_bundle(folder), precision, threads=2, name=name, fallback=None)
    from export.lalm_cli import is_program_model, model_folder  # noqa: PLC0415

    path, opts = name, set()
    while path.rsplit(":", 1)[-1] in PROGRAM_OPTIONS and ":" in path:
        path, opt = path.rsplit(":", 1)
        opts.add(opt)
    mono = "mono" in opts
    folder = model_folder(path)
    if folder is not None and is_program_model(folder):
        from agent.answer.hearing import encoder_hearing  # noqa: PLC0415
        from training.eval.program_answerer import ProgramAnswerer  # noqa: PLC0415

        # PATH:mono: the same model over an encoder that hears the L+R average (the mono baseline);
        # PATH:names / :copies / :plain: how the sound-word table mends its class arguments
        answerer = ProgramAnswerer(folder, encoder_hearing(mono=mono), name=f"program:{name}")
        answerer.names = ("all" if "names" in opts else "copies" if "copies" in opts else "off" if "plain" in opts
                          else answerer.names)
        answerer.checked = answerer.checked and "unchecked" not in opts
        answerer.grounded = ("grounded" in opts or answerer.grounded) and "ungrounded" not in opts
        return answerer
    if opts - {"mono"}:
        raise BinauraError(f"--model {name!r}: ':names', ':copies', ':plain', ':unchecked', ':grounded' and "
                           f"':ungrounded' apply to a program-aided model")
    if mono:
        raise BinauraError(f"--model {name!r}: ':mono' applies to a program-aided model; a model that answers in "
                           f"sentences is trained for mono with `binaura train sft --mono`")
    if folder is not None:
        from training.eval.lalm_answerer import LalmAnswerer  # noqa: PLC0415

        return LalmAnswerer(folder, name=f"lalm:{name}")
    raise BinauraError(f"--model {name!r}: expected one of {', '.join(BASELINE_ANSWERERS)}, default (the shipped "
                       f"language model) or a language-model folder (RUN/model from `binaura train parse|sft`; "
                       f"a program-aided one also as PATH:mono, PATH:plain, PATH:copies or PATH:names for "
                       f"how the sound-word table mends its programs, PATH:unchecked and PATH:ungrounded), or bundle:DIR[:int4|fp32] (an edge bundle; "
                       f"bundle:default: the one set-up builds)")
