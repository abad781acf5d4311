"""Program-aided answering, whatever writes the program (issue 23): the question -> a program
(a language model: torch in training/eval/program_answerer.py, the bundle's ONNX decoder in
agent/answer/bundle_answerer.py) -> the answer programs (agent/qa) run on what was heard.

Two shapes share it:
- `ProgramAnswering`: an Answerer over clips (`bench qa`, `ask`): the clip is heard once by an
  encoder (hear: clip -> SourceLabel list), every question's program runs on that scene. With
  a `fallback` (`ask` sets tracks_reply), an open question no program asks, or a program that
  does not parse, gets the tracks' answer over the heard sources instead of NOT_UNDERSTOOD;
  without one (`bench qa`) every question goes through its program.
- `LiveProgramAnswering`: callable(question, pipeline) -> answer chunks (agent.run.Runner's
  answerer): the program runs on the tracks of the last `window_s` seconds; what no program
  asks ("what do you hear?", "what is the person on my left saying?"), and a program that does
  not parse, go to the tracks' own answerer (agent.answer.tracks).
A subclass supplies only how programs are written (`write_programs` / `write_program`).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterator

from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.predictor import Clip
from agent.core.scene import QAItem, Scene, SourceLabel
from agent.qa.check import fitting_tasks, problems, trimmed
from agent.qa.programs import (
    PROGRAM_OF_TASK,
    parse_program,
    program_of,
    right_on_truth,
    run_program,
)

#: A program is a task and a few arguments (the longest on the benchmark: 18 tokens).
MAX_NEW_TOKENS = 32
NOT_UNDERSTOOD = "Sorry, I did not understand the question."
#: Questions no answer program asks (they are not benchmark tasks): the tracks answer them.
TRACK_QUESTIONS = re.compile(r"\b(saying|said|says|talking about|words|describe)\b|what (do|can) you hear|"
                             r"what('s| is) (going on|around)")

Hearing = Callable[[Clip], list[SourceLabel]]


def scene_of(scene_id: str, sources: list, duration_s: float) -> Scene:
    """A scene holding only what was heard (no truth, no room): what the answer programs read.
    duration_s: the clip's length in seconds."""
    return Scene(scene_id, "", 0, duration_s, [dataclasses.replace(s) for s in sources], None, "")


def asks_tracks(question: str) -> bool:
    """Whether no answer program asks this (a description, what someone says)."""
    return TRACK_QUESTIONS.search(question.lower()) is not None


@dataclasses.dataclass(frozen=True)
class HeardTrack:
    """A source heard in a clip, in the shape the tracks' answerer reads (agent.track's tracks):
    azimuth and elevation in degrees, distance in metres, t_start in seconds."""

    label: str
    azimuth_deg: float
    elevation_deg: float
    distance_m: float | None
    t_start: float
    t_last_hit: float
    confidence: float = 1.0


def tracks_reply(question: str, heard: Scene) -> str:
    """The tracks' answerer (agent.answer.tracks) over a clip's heard sources: a description for
    "what do you hear?", where a named sound is, "I don't hear a dog". It does not transcribe
    ("what is she saying?" gets where the talker is): that needs the live pipeline's audio."""
    from agent.answer.tracks import TrackAnswerer  # noqa: PLC0415

    tracks = [HeardTrack(s.label, s.azimuth_deg, s.elevation_deg, s.distance_m, s.onset_s, s.offset_s)
              for s in heard.sources]
    return TrackAnswerer().answer(question, tracks)


Fallback = Callable[[str, Scene], str]


def reply_to(program_text: str, heard: Scene, options: list[str] | None) -> str:
    """The reply a person hears for a model's program text on the heard scene ("B. The dog is
    ..." for a choice question), or NOT_UNDERSTOOD when the text is not a program."""
    program = parse_program(program_text)
    if program is None:
        return NOT_UNDERSTOOD
    return run_program(program, heard, options)[1]


NAME_MODES = ("off", "copies", "all")
#: the default, chosen on the selection set by the rule in docs/lalm.md ("Names apart from the parser")
DEFAULT_NAMES = "all"


def mend_names(text: str, question: str, mode: str) -> str:
    """The program after the sound-word table (agent/qa/resolve.py) has looked at its class
    arguments: mode "copies" replaces only arguments that are no class (a copied name), "all"
    also a class no word of the question names; "off" leaves it."""
    if mode == "off":
        return text
    if mode not in NAME_MODES:
        raise BinauraError(f"name resolution {mode!r}: expected one of {', '.join(NAME_MODES)}")
    from agent.qa.resolve import default_words  # noqa: PLC0415

    return default_words().mend(text, question, classes_too=mode == "all")


#: the default, chosen on the selection set by the rule in docs/lalm.md ("Checked decoding")
DEFAULT_CHECKED = True

#: the default, chosen on the selection set by the rule in docs/lalm.md ("Names the scene settles")
DEFAULT_GROUNDED = True


def grounded(text: str, question: str, heard: set[str]) -> str:
    """The program with an ambiguous name settled by what was heard (SoundWords.ground: "the
    rapping" is the knock when a knock, and no tap of water, was heard). heard: the classes of
    the sources heard."""
    from agent.qa.resolve import default_words  # noqa: PLC0415

    return default_words().ground(text, question, heard)


#: A model writing a question's program with its task fixed: (question, program task names) ->
#: [(program text, its log-probability under the model)], one per task, in order.
TaskWriter = Callable[[str, tuple[str, ...]], list[tuple[str, float]]]


def checked_program(text: str, question: str, options: list[str] | None, names: str,
                    write_with_tasks: TaskWriter | None, unparsed: bool = True) -> str:
    """Checked decoding (agent/qa/check.py): the program `text` (already mended) when it fits the
    question; else the likeliest of the programs the model writes with its task fixed to each
    task that could answer the question, mended and fitting; else `text` unchanged.
    unparsed=False leaves a text that is no program at all to the caller's fallback (`ask` and
    the live agent give such a question, often one no task asks, to the tracks' answerer)."""
    if write_with_tasks is None or not problems(text, question, options):
        return text
    if not unparsed and parse_program(text) is None:
        return text
    short = trimmed(text)  # the parser's own task, less the arguments it does not take
    if short is not None and not problems(short, question, options):
        return short
    first = parse_program(text)
    tasks = tuple(PROGRAM_OF_TASK[t] for t in fitting_tasks(options))
    tasks = tuple(dict.fromkeys(t for t in tasks if first is None or t != PROGRAM_OF_TASK[first.task]))
    from agent.qa.resolve import default_words  # noqa: PLC0415

    words = default_words()
    known = words.known(question)
    fits = [(-unnamed_classes(mended, known), score, mended) for t, score in write_with_tasks(question, tasks)
            if not problems(mended := mend_names(t, question, names), question, options)]
    return max(fits)[2] if fits else text


def unnamed_classes(text: str, known: set[str]) -> int:
    """How many of a program's class arguments the question does not name (`known`: the classes
    the sound-word table finds in it): a rewrite that invents a class ranks below one that does not."""
    program = parse_program(text)
    if program is None:
        return 0
    from agent.qa.resolve import CLASS_ARGS  # noqa: PLC0415

    return sum(1 for k in CLASS_ARGS if k in program.args and program.args[k] in LABELS
               and program.args[k] not in known)


class ProgramAnswering:
    """An Answerer over clips whose model writes programs. Subclasses implement
    write_programs(questions) -> program texts, one per question, in order, and may implement
    write_with_tasks (TaskWriter) for checked decoding. `names`: how the sound-word table mends
    the programs' class arguments (NAME_MODES, mend_names); `checked`: whether a program that
    does not fit its question is written again (checked_program)."""

    needs_audio = True
    fallback: Fallback | None = None
    names = DEFAULT_NAMES
    checked = DEFAULT_CHECKED
    grounded = DEFAULT_GROUNDED
    write_with_tasks: TaskWriter | None = None

    def __init__(self, hear: Hearing, name: str, fallback: Fallback | None = None):
        """hear: clip -> the sources an encoder heard in it, with their time spans
        (agent.answer.hearing.encoder_hearing). fallback(question, heard scene) -> reply, for an
        open question no program asks and a program that does not parse (e.g. tracks_reply)."""
        self.hear = hear
        self.name = name
        self.fallback = fallback
        self.programs: dict[str, str] = {}  # item id -> the program that ran (written, mended, checked, grounded)
        self._checked: dict[tuple, str] = {}  # (first program, question, options) -> checked_program's
        self._scene_id: str | None = None
        self._heard: Scene | None = None
        self._lock = threading.Lock()  # the live agent may ask from several threads

    def write_programs(self, questions: list[str]) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} must say how its programs are written")

    def program_questions(self, items: list[QAItem]) -> list[str]:
        """The distinct questions among `items` that go through a program, shortest first (a
        model batches them with the least padding): what `bench qa` has written up front, in
        batches, before it goes clip by clip (a program depends on the question alone)."""
        return sorted({q.question for q in items if self.through_program(q)}, key=lambda q: (len(q), q))

    def through_program(self, item: QAItem) -> bool:
        """Whether the item's answer comes from a program: always without a fallback, else for a
        choice question and whatever the tracks do not answer (asks_tracks)."""
        return self.fallback is None or item.options is not None or not asks_tracks(item.question)

    def heard_scene(self, clip: Clip) -> Scene:
        """The clip as the encoder heard it: its decoded sources with their time spans."""
        if clip.scene_id != self._scene_id or self._heard is None:
            if clip.audio is None:
                raise BinauraError(f"{clip.scene_id}: the program-aided model needs the clip's audio")
            self._heard = scene_of(clip.scene_id, self.hear(clip), clip.audio.shape[-1] / clip.sample_rate_hz)
            self._scene_id = clip.scene_id
        return self._heard

    def heard_sources(self, clip: Clip) -> list[SourceLabel]:
        return list(self.heard_scene(clip).sources)

    def reply(self, program_text: str, heard: Scene, options: list[str] | None) -> str:
        return reply_to(program_text, heard, options)

    def answer_many(self, clip: Clip, items: list[QAItem]) -> list[str]:
        heard = self.heard_scene(clip)
        fallback = self.fallback
        asked = [i for i, q in enumerate(items) if self.through_program(q)]
        texts = {i: self.checked_text(mend_names(t, items[i].question, self.names), items[i])
                 for i, t in zip(asked, self.write_programs([items[i].question for i in asked]), strict=True)}
        if self.grounded:
            labels = {s.label for s in heard.sources}
            texts = {i: grounded(t, items[i].question, labels) for i, t in texts.items()}
        self.programs.update({items[i].id: t for i, t in texts.items()})
        replies = []
        for i, q in enumerate(items):
            text = texts.get(i)
            if text is None or (fallback is not None and parse_program(text) is None):
                replies.append(fallback(q.question, heard))
            else:
                replies.append(self.reply(text, heard, q.options))
        return replies

    def checked_text(self, text: str, item: QAItem) -> str:
        """The program after checked decoding (when `checked`), remembered per question and
        options (a program depends on nothing else)."""
        if not self.checked:
            return text
        key = (text, item.question, tuple(item.options or ()))
        if key not in self._checked:
            self._checked[key] = checked_program(text, item.question, item.options, self.names, self.write_with_tasks,
                                                 unparsed=self.fallback is None)
        return self._checked[key]

    def answer(self, clip: Clip, item: QAItem) -> str:
        return self.answer_many(clip, [item])[0]

    def report(self, ds) -> dict:
        """How well the model wrote the programs of the items it answered: exactly the reference
        program, or one that gives the same answer on the truth (l1_not_heard asks what l1_sector
        does; a yes/no claim may be worded either way). Fractions of n, the items with a
        reference program."""
        exact = same = n = 0
        for q in ds.qa:
            text = self.programs.get(q.id)
            if text is None or "params" not in q.extra:
                continue
            n += 1
            exact += text.strip() == program_of(q).text()
            same += right_on_truth(text, q, ds.by_id[q.scene_id])
        return {"n": n, "exact": exact / n if n else None, "same_answer_on_truth": same / n if n else None}


class LiveProgramAnswering:
    """callable(question, pipeline) -> answer chunks, word by word. Subclasses implement
    write_program(question) -> program text."""

    names = DEFAULT_NAMES
    checked = DEFAULT_CHECKED
    grounded = DEFAULT_GROUNDED
    write_with_tasks: TaskWriter | None = None

    def __init__(self, tracks, window_s: float, name: str):
        """tracks: the tracks' answerer (agent.answer.tracks.TrackAnswerer), for what no program
        asks; window_s: how far back (seconds) the tracks count as heard."""
        self.tracks = tracks
        self.window_s = window_s
        self.name = name
        self.last_program: str | None = None
        self._lock = threading.Lock()

    def write_program(self, question: str) -> str:
        raise NotImplementedError(f"{type(self).__name__} must say how its program is written")

    def __call__(self, question: str, pipeline) -> Iterator[str]:
        self.last_program = None
        if asks_tracks(question):
            yield from self.tracks(question, pipeline)
            return
        with self._lock:
            text = mend_names(self.write_program(question), question, self.names)
            if self.checked:
                text = checked_program(text, question, None, self.names, self.write_with_tasks, unparsed=False)
        self.last_program = text
        program = parse_program(text)
        if program is None:
            yield from self.tracks(question, pipeline)
            return
        tracks = sorted(pipeline.heard_tracks(self.window_s), key=lambda t: -t.confidence)  # a class's best first
        heard = scene_of("live", [SourceLabel(t.label, t.azimuth_deg, t.elevation_deg, t.distance_m, t.t_start,
                                              t.t_last_hit) for t in tracks], self.window_s)
        if self.grounded:
            text = grounded(text, question, {s.label for s in heard.sources})
            self.last_program = text
            program = parse_program(text) or program
        yield from re.findall(r"\S+\s*", run_program(program, heard, None)[1])  # word by word, as tracks do
