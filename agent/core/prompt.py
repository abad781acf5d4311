"""The prompt template: one versioned definition of how a question and the heard audio reach
the language model, used by training (torch) and by the agent's runtime (ONNX) alike.

The text is ChatML (`<|im_start|>role ... <|im_end|>`), the format of SmolLM2 and Qwen2.5
Instruct, written out here rather than taken from a tokenizer's chat template, so the runtime
needs no transformers and a checkpoint's template cannot drift with a library version. The
audio goes in as embeddings, not tokens: the user turn holds AUDIO_OPEN, then the projector's
n audio embeddings, then AUDIO_CLOSE. `render` returns the text before and after that slot;
the caller tokenizes both and splices the embeddings between them.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.errors import BinauraError
from agent.core.geometry import elevation_name, sector_of
from agent.core.labels import display
from agent.core.scene import OPTION_LETTERS, option_letter

#: Bumped whenever anything below changes what the model sees; checkpoints and bundles record
#: it and a mismatch is refused.
TEMPLATE_VERSION = "binaura-prompt-v2"  # v2: the heard line (heard_line)
#: Kept short: every prompt token costs prefill time on the device.
SYSTEM = "You are binaura. You hear the listener's surroundings through two ear microphones."
AUDIO_OPEN, AUDIO_CLOSE = "<audio>", "</audio>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHOICE_INSTRUCTION = "Answer with the letter of one option, then a short sentence."
OPEN_INSTRUCTION = "Answer in one short sentence."
#: Where decoding stops: the end of the assistant's turn.
STOP_TEXT = IM_END


@dataclass(frozen=True)
class Prompt:
    """The text around the audio slot. before + <n audio embeddings> + after is the prompt;
    the model's answer follows `after`."""

    before: str
    after: str


def _turn(role: str, text: str) -> str:
    return f"{IM_START}{role}\n{text}{IM_END}\n"


def user_text(question: str, options: list[str] | None) -> str:
    """The part of the user turn after the audio: the question, its lettered options, and
    what kind of answer is wanted."""
    question = question.strip()
    if not question:
        raise BinauraError("the question is empty; ask something about the scene, e.g. 'Where is the dog?'")
    if options is not None:
        if not 2 <= len(options) <= len(OPTION_LETTERS):
            raise BinauraError(f"a choice question needs 2 to {len(OPTION_LETTERS)} options, got {len(options)}")
        lines = [f"{option_letter(i)}. {opt}" for i, opt in enumerate(options)]
        return "\n".join([question, *lines, CHOICE_INSTRUCTION])
    return f"{question}\n{OPEN_INSTRUCTION}"


def render(question: str, options: list[str] | None = None, system: str = SYSTEM) -> Prompt:
    """The prompt for one question about one clip (see the module docstring)."""
    head = _turn("system", system) + f"{IM_START}user\n{AUDIO_OPEN}"
    tail = f"{AUDIO_CLOSE}\n{user_text(question, options)}{IM_END}\n{IM_START}assistant\n"
    return Prompt(head, tail)


#: The program-aided model's system turn (agent/qa/programs.py): it writes the question as a
#: program that the answer programs run on what the encoder heard; it sees neither audio nor options.
PROGRAM_SYSTEM = "You are binaura. Write the listener's question as a program."


def render_program(question: str) -> Prompt:
    """The program-aided model's prompt: the question alone (no audio slot, no options)."""
    question = question.strip()
    if not question:
        raise BinauraError("the question is empty; ask something about the scene, e.g. 'Where is the dog?'")
    return Prompt(_turn("system", PROGRAM_SYSTEM) + _turn("user", question) + f"{IM_START}assistant\n", "")


def answer_text(answer: str) -> str:
    """What the model is trained to write after the prompt: the answer, then the end of turn."""
    return f"{answer.strip()}{IM_END}"


def heard_line(sources: list) -> str:
    """What the encoder decoded, as one line in the words the answers use: per source (in onset
    order) its name, sector, azimuth, elevation word, distance and onset, then "Nothing
    else." so that a sound missing from the line is a sound not heard. `sources` are
    SourceLabels (agent.core.seld.heard_sources). The cascade baseline's whole view of the
    audio, and the full model's second view beside its audio embeddings."""
    if not sources:
        return "Heard: no distinct sound."
    parts = []
    for s in sorted(sources, key=lambda s: (s.onset_s, s.label)):
        part = (f"{display(s.label)}: {sector_of(s.azimuth_deg)}, {s.azimuth_deg:+.0f} deg, "
                f"{elevation_name(s.elevation_deg)}")
        if s.distance_m is not None:
            part += f", {s.distance_m:.1f} m"
        parts.append(part + f", from {s.onset_s:.1f} s")
    return "Heard: " + "; ".join(parts) + ". Nothing else."
