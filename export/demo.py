"""The README's demo: synthesize a scene, localize it with the best model available, say what is where."""

from __future__ import annotations

from pathlib import Path

from agent.answer.tracks import TrackAnswerer, where_words
from agent.core.dataset import read_dataset
from agent.core.geometry import distance_bin
from agent.core.labels import EVERYDAY_NAMES, display
from agent.core.predictor import Clip
from export.registry import DEFAULT_LOCALIZER, make_localizer
from training.eval.metrics import match_clip
from training.synth.build import build_dataset
from training.synth.config import preset


def describe(azimuth_deg: float, elevation_deg: float, distance_m: float | None) -> str:
    s = f"{where_words(azimuth_deg)} ({azimuth_deg:+.0f} deg"
    s += f", elevation {elevation_deg:+.0f} deg" if abs(elevation_deg) >= 1 else ""
    s += ")" if distance_m is None else f", {distance_m:.1f} m, {distance_bin(distance_m)})"
    return s


def run_demo(out: str | Path, seed: int = 7, index: int = 0, model_names: tuple[str, ...] | None = None) -> str:
    """Render one demo scene; say what each model hears where, beside the truth."""

    cfg = preset("demo")
    build_dataset(out, cfg, 1, seed, start=index, workers=1, progress=False)
    ds = read_dataset(out)
    scene = ds.scenes[0]
    audio, rate = ds.load_audio(scene)
    models = [make_localizer(n) for n in (model_names or (DEFAULT_LOCALIZER, "gccphat"))]
    clip = Clip(scene.id, audio, rate)
    runs = []
    for model in models:
        preds = model.localize(clip)
        # a model that names classes is paired class by class, one that does not by direction
        result = match_clip(scene, preds, by_label=bool(preds) and all(p.label for p in preds))
        runs.append((model, preds, {pair.true_index: pair for pair in result.pairs}))
    room = "anechoic" if scene.room is None else f"a room with RT60 {scene.room['rt60_s']:.2f} s"
    width = max(len(m.name) for m in models)
    lines = [f"binaura demo: {ds.audio_path(scene)} ({scene.duration_s:.0f} s, {rate} Hz, {room}, head {scene.hrtf})",
             f"models: {', '.join(m.name for m in models)}", ""]
    for i, s in enumerate(scene.sources):
        lines.append(f"{display(s.label).capitalize()} ({s.onset_s:.1f}-{s.offset_s:.1f} s) is "
                     f"{describe(s.azimuth_deg, s.elevation_deg, s.distance_m)}.")
        for model, preds, pairs in runs:
            pair = pairs.get(i)
            if pair is None:
                lines.append(f"    {model.name:<{width}}  missed it")
                continue
            p = preds[pair.pred_index]
            what = display(p.label) if p.label else "a source"
            lines.append(f"    {model.name:<{width}}  hears {what} {describe(p.azimuth_deg, p.elevation_deg, p.distance_m)}"
                         f": {pair.angular_deg:.0f} deg off" + (" (front/back mirror)" if pair.front_back else ""))
    for model, preds, pairs in runs:
        extra = len(preds) - len(pairs)
        if extra > 0:
            lines.append(f"({model.name} also reported {extra} source(s) that are not there)")
    if any(m.name == "gccphat" for m in models):
        lines.append("\nThe classical baseline (gccphat) hears interaural time and level differences only: it cannot "
                     "tell front from back, names no classes and gives no distance. The trained encoder names each "
                     "sound and says how far it is; its front/back and elevation are still weak "
                     "(BENCHMARKS.md).")
    lines += ["", "The live agent on the same audio (`binaura listen --source scene:demo`), streamed in 0.1 s blocks:"]
    lines += live_agent_lines(audio, rate, [s.label for s in scene.sources])
    text = "\n".join(lines)
    print(text)
    return text


def live_agent_lines(audio, rate: int, labels: list[str]) -> list[str]:
    """Narration as the scene unfolds, then questions answered from the tracks."""
    from agent.capture import ArraySource  # noqa: PLC0415
    from agent.localize.encoder import EncoderRuntime  # noqa: PLC0415
    from agent.narrate import NarrationConfig, Narrator  # noqa: PLC0415
    from agent.pipeline import Pipeline  # noqa: PLC0415

    pipe = Pipeline(EncoderRuntime(), narrator=Narrator(NarrationConfig()))
    events = []
    for block in ArraySource(audio, rate, name="demo", paced=False).blocks():
        events += pipe.process(block)
    out = [f"  {e.t_s:4.1f} s  {e.text}" for e in events if e.type == "narration"]
    answerer, program = _answerer()
    names = [EVERYDAY_NAMES[lab][0] for lab in labels]  # everyday words, not the class names
    questions = ["What do you hear?", f"Where is {names[0]}?"]
    if len(labels) > 1:
        questions.append(f"Which is closer, {names[0]} or {names[1]}?")
    if program:
        questions.append(f"If I turn around, where will {names[-1]} be?")
    out.append(f"  questions, answered by {getattr(answerer, 'name', 'the tracks (rule-based)')}:")
    for q in questions:
        line = f"  Q: {q}\n  A: {''.join(answerer(q, pipe))}"
        written = getattr(answerer, "last_program", None)
        if written is not None:
            line += f"   [program: {written}]"
            answerer.last_program = None
        out.append(line)
    pipe.finish()
    return out


def _answerer():
    """The shipped program-aided language model over the tracks when this checkout has it (it
    writes each question as a program): through the default edge bundle (ONNX Runtime) where
    set-up built it, else through torch; without the model, the tracks' own answerer.
    -> (answerer, is_model)"""
    from export.bundle_setup import built_default_bundle  # noqa: PLC0415
    from export.lalm_cli import DEFAULT_MODEL, model_folder  # noqa: PLC0415

    if model_folder(DEFAULT_MODEL) is None:
        return TrackAnswerer(), False
    bundle = built_default_bundle()
    if bundle is not None:
        from agent.answer.bundle_answerer import LiveBundleAnswerer  # noqa: PLC0415

        return LiveBundleAnswerer(bundle, TrackAnswerer(), threads=2), True
    from training.eval.program_answerer import LiveProgramAnswerer  # noqa: PLC0415

    return LiveProgramAnswerer(DEFAULT_MODEL, TrackAnswerer()), True
