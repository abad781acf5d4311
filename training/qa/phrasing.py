"""How questions are worded: >= 8 phrasings per task, everyday names for classes, and the
hold-out of some wordings from training (issue 20, "Language a person actually uses").

Hold-out rule (deterministic, in the data below): per task, the phrasings listed under
`heldout` (2 of 10) and, per class, the LAST name of `EVERYDAY_NAMES[label]` are never used
by a training-split dataset; the benchmark split uses them for a stated share of items
(QAConfig in generate.py), so accuracy on held-out wordings is reported apart.

Template fields (str.format): `{a}`/`{b}`/`{label}` a class's name, `{A}`/`{B}`/`{Label}`
capitalised, `{a_is}`/`{A_is}` ... "is"/"are" agreeing with it; `{claim_me}`/`{claim_you}`
the claim of a yes/no question in the first or second person, `{claim_is}`/`{Claim_is}`;
`{where_me}`/`{where_you}` a sector said in words; `{turn_my}`/`{turn_you}` a rotation;
`{distance_m}`, `{sector}` as sampled. A template holding `{claim_` is a yes/no question.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.core.labels import EVERYDAY_NAMES, display, is_plural
from agent.qa.sentences import capitalise

NAME_SLOTS = ("a", "b", "label", "c")  # params keys that hold a class; "c" is a yes/no claim's class


@dataclass(frozen=True)
class Phrasings:
    seen: tuple[str, ...]
    heldout: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        """Seen then held-out: an item's `phrasing_id` indexes this."""
        return self.seen + self.heldout


def is_yesno(template: str) -> bool:
    return "{claim_" in template


P = Phrasings
PHRASINGS: dict[str, Phrasings] = {
    # ---- L1 ----
    "l1_class_present": P(
        ("Which of these sounds can you hear?", "One of these sounds is in the scene. Which one?",
         "Which of these is around me right now?", "Tell me which of these sounds you can hear.",
         "What can you hear among these?",
         "Can you hear {claim_me}?", "Do you hear {claim_me} anywhere?", "Any sign of {claim_me}?"),
        ("Out of these, which sound is actually there?", "Can you pick up {claim_me} in this recording?")),
    "l1_sector": P(
        ("Where {a_is} {a}?", "Where {a_is} {a} relative to me?", "Which direction {a_is} {a} coming from?",
         "Tell me where {a} {a_is}.", "From which direction do you hear {a}?",
         "{A_is} {a} {claim_me}?", "Am I right that {a} {a_is} {claim_me}?", "Do you hear {a} {claim_me}?"),
        ("In which direction should I look for {a}?", "Would I find {a} {claim_me}?")),
    "l1_azimuth_deg": P(
        ("What is the azimuth of {a} in degrees (0 ahead, positive to the left)?",
         "Give the direction of {a} as an azimuth in degrees, counter-clockwise from straight ahead.",
         "At what angle {a_is} {a}, in degrees from straight ahead (left positive)?",
         "Tell me the bearing of {a} in degrees: 0 is ahead, 90 is my left.",
         "What angle do you hear {a} at? Degrees, left positive.",
         "Azimuth of {a}, please, in degrees (counter-clockwise from ahead).",
         "Where exactly {a_is} {a}? Give me an angle in degrees (0 straight ahead, +90 on my left).",
         "How many degrees counter-clockwise from my nose {a_is} {a}?"),
        ("If straight ahead is 0 degrees and my left is 90, at what angle {a_is} {a}?",
         "Give me an angle for {a}, counter-clockwise from where I face, in degrees.")),
    "l1_elevation": P(
        ("{A_is} {a} above, at, or below ear level?", "How high {a_is} {a} relative to my ears?",
         "{A_is} {a} up high or down low?", "At what height do you hear {a}?", "Tell me how high {a} {a_is}.",
         "{A_is} {a} {claim_me}?", "Do you hear {a} {claim_me}?", "Am I right that {a} {a_is} {claim_me}?"),
        ("Should I look up or down to find {a}?", "Would you place {a} {claim_me}?")),
    "l1_distance_bin": P(
        ("How far away {a_is} {a}?", "At what distance {a_is} {a}?", "How far from me {a_is} {a}?",
         "Tell me how far away {a} {a_is}.", "How close {a_is} {a}?",
         "{A_is} {a} {claim_me}?", "Do you hear {a} {claim_me}?", "Am I right that {a} {a_is} {claim_me}?"),
        ("Roughly how far off {a_is} {a}?", "Would you say {a} {a_is} {claim_me}?")),
    "l1_distance_m": P(
        ("How many metres away {a_is} {a}?", "Estimate the distance to {a} in metres.",
         "How far is it to {a}, in metres?", "What's the distance from me to {a}? Metres, please.",
         "Give me the distance of {a} in metres.", "In metres, how far from my head {a_is} {a}?",
         "Tell me how many metres separate me from {a}.", "About how many metres off {a_is} {a}?"),
        ("If I walked to {a}, how many metres would that be?", "Distance to {a} in metres?")),
    "l1_count": P(
        ("How many distinct sound sources are there?", "How many sounds are in the scene?",
         "How many different sounds do you hear?", "Count the sounds around me.",
         "How many things are making noise around me?",
         "Do you hear exactly {claim_me}?", "Is it {claim_me} I'm hearing, in total?",
         "So, {claim_me} in total, right?"),
        ("How many noises are going on at once?", "Am I right that there's exactly {claim_me} here?")),
    "l1_first_onset": P(
        ("Which sound started first?", "Which of these sounds began earliest?", "What did I hear first?",
         "Which sound came on first?", "Tell me which sound started before the others.",
         "Did {claim_me} start first?", "Did {claim_me} begin before the others?", "Did {claim_me} come on first?"),
        ("Which one kicked off first?", "Did {claim_me} start before everything else?")),
    "l1_not_heard": P(
        ("Where's {a}?", "Can you tell me where {a} {a_is}?", "Do you hear {a}? Where?", "Point me to {a}.",
         "Which way {a_is} {a}, if you hear it at all?", "I'm looking for {a}. Which direction?",
         "Where should I look for {a}?", "I think I hear {a}. Where is that coming from?"),
        ("Help me find {a}: which way?", "Locate {a} for me.")),
    # ---- L2 ----
    "l2_relative": P(
        ("Relative to {b}, where {a_is} {a}?", "Seen from above, where {a_is} {a} with respect to {b}?",
         "Where {a_is} {a} compared with {b}?", "How {a_is} {a} placed relative to {b}?",
         "Tell me where {a} {a_is} with respect to {b}, seen from above.",
         "{A_is} {a} {claim_me} {b}?", "Seen from above, {a_is} {a} {claim_me} {b}?",
         "Would you say {a} {a_is} {claim_me} {b}?"),
        ("Looking down from above, where {a_is} {a} in relation to {b}?",
         "From above, would {a} sit {claim_me} {b}?")),
    "l2_closer": P(
        ("Which is closer, {a} or {b}?", "Which of {a} and {b} is nearer to me?",
         "Which is nearer to me: {a} or {b}?", "Is {a} or {b} closer to me?",
         "Tell me which is closer, {a} or {b}.", "Between {a} and {b}, which one is nearer?",
         "Who's closer to me, {a} or {b}?", "Which one is closer to my head, {a} or {b}?"),
        ("Which is a shorter distance from me, {a} or {b}?", "Of {a} and {b}, which one is less far away?")),
    "l2_farthest": P(
        ("Which sound is farthest away?", "Which source is the most distant?", "What's the farthest sound from me?",
         "Which sound is furthest from me?", "Tell me which sound is the most distant.",
         "{Claim_is} {claim_me} the farthest sound from me?",
         "Would you say {claim_me} {claim_is} the most distant sound?",
         "Of everything you hear, {claim_is} {claim_me} the farthest away?"),
        ("What's the most far-off thing I can hear?", "{Claim_is} {claim_me} the sound farthest from me?")),
    "l2_bind_direction": P(
        ("Which sound comes from the {sector}?", "What do you hear in the {sector} direction?",
         "What is that sound {where_me}?", "What's making the noise {where_me}?",
         "Tell me what I'm hearing {where_me}.",
         "{Claim_is} {claim_me} the sound {where_me}?", "Is the sound {where_me} {claim_me}?",
         "Is that {claim_me} {where_me}?"),
        ("What's that noise coming from {where_me}?", "Would the sound {where_me} be {claim_me}?")),
    "l2_bind_distance": P(
        ("Which sound is about {distance_m} metres away?", "What is roughly {distance_m} m from you?",
         "What do I hear about {distance_m} metres from me?", "Which sound is roughly {distance_m} m away from me?",
         "Tell me which sound is about {distance_m} metres off.",
         "{Claim_is} {claim_me} about {distance_m} metres away?",
         "Is the sound about {distance_m} m away {claim_me}?",
         "Would you say {claim_me} {claim_is} roughly {distance_m} metres from me?"),
        ("Something is about {distance_m} metres from me. What is it?",
         "Is it {claim_me} that's about {distance_m} m from me?")),
    "l2_angle_between": P(
        ("What is the angle between {a} and {b}, in degrees?",
         "How many degrees apart are {a} and {b} as seen from your head?",
         "How far apart, in degrees, are {a} and {b} from where I stand?",
         "Seen from my head, what angle separates {a} and {b}?",
         "Tell me the angle between {a} and {b} in degrees.", "By how many degrees are {a} and {b} separated?",
         "What's the angular gap between {a} and {b}, in degrees?",
         "If I point at {a} and then at {b}, how many degrees does my arm sweep?"),
        ("How wide is the angle from {a} to {b}, in degrees?", "Degrees between {a} and {b}?")),
    # ---- L3 ----
    "l3_rotate_face": P(
        ("If you turn to face {a}, where will {b} be?", "After turning towards {a}, in which direction {b_is} {b}?",
         "If I turn to face {a}, where will {b} be?", "Once I'm facing {a}, where {b_is} {b}?",
         "I turn towards {a}. Where {b_is} {b} then?",
         "If I turn to face {a}, will {b} be {claim_me}?", "After I turn towards {a}, {b_is} {b} {claim_me}?",
         "Once I face {a}, will I hear {b} {claim_me}?"),
        ("Say I look straight at {a}. Where {b_is} {b} now?",
         "If I look straight at {a}, will {b} end up {claim_me}?")),
    "l3_rotate_by": P(
        ("If you {turn_you}, where will {a} be?", "Suppose you {turn_you}. In which direction {a_is} {a} then?",
         "If I {turn_my}, where will {a} be?", "I {turn_my}. Where {a_is} {a} now?",
         "After I {turn_my}, which direction will {a} come from?",
         "If I {turn_my}, will {a} be {claim_me}?", "Suppose I {turn_my}: will I hear {a} {claim_me}?",
         "After I {turn_my}, {a_is} {a} {claim_me}?"),
        ("Picture me as I {turn_my}. Where does that leave {a}?", "Once I {turn_my}, would {a} be {claim_me}?")),
    "l3_navigate": P(
        ("Which way should you turn to face {a}, and by how many degrees?",
         "How do you turn your head to look at {a}? Answer left or right and degrees.",
         "Which way should I turn to face {a}, and how far?",
         "How should I turn to look straight at {a}? Left or right, and how many degrees?",
         "Tell me how to turn to face {a}.", "I want to face {a}. Which way do I turn, and by how much?",
         "Guide me: how far left or right to face {a}?", "Turn me towards {a}: left or right, how many degrees?"),
        ("What turn gets me looking at {a}?", "How do I point my nose at {a}?")),
    "l3_remove": P(
        ("If {a} stopped, which sound would be the closest?", "Without {a}, which remaining sound is nearest?",
         "If {a} went quiet, what would be the nearest sound to me?", "Ignoring {a}, which sound is closest to me?",
         "Take away {a}: which sound is then the nearest?",
         "If {a} stopped, would {claim_me} be the closest sound?",
         "Without {a}, {claim_is} {claim_me} the nearest sound?", "Ignoring {a}, {claim_is} {claim_me} closest to me?"),
        ("Once {a} is gone, what's nearest to me?", "With {a} silenced, would {claim_me} be the nearest thing I hear?")),
    "l3_priority": P(
        ("Which sound needs your attention first?", "Which sound should you react to first?",
         "What should I deal with first?", "Which of these sounds matters most right now?",
         "What needs my attention most urgently?",
         "Should I deal with {claim_me} first?", "{Claim_is} {claim_me} the most urgent thing I hear?",
         "Should {claim_me} be my first concern?"),
        ("If I can only check on one thing, what should it be?",
         "Would you look after {claim_me} before anything else?")),
    "l3_consistency": P(
        ("Someone says: '{Label} {label_is} {where_you}, about {distance_m} m away.' Does that match what you hear?",
         "Is this description right: '{label}, {where_you}, roughly {distance_m} metres away'?",
         "My friend says {label} {label_is} {where_me}, about {distance_m} m away. Is that right?",
         "I think {label} {label_is} {where_me}, roughly {distance_m} metres off. Am I right?",
         "Check this for me: {label}, {where_me}, about {distance_m} m from me.",
         "Does '{label} {where_you}, {distance_m} m away' describe the scene?",
         "True or false: {label} {label_is} {where_me} and about {distance_m} metres away.",
         "Someone claims {label} {label_is} {where_me} at about {distance_m} m. Correct?"),
        ("Would you agree that {label} {label_is} {where_me}, some {distance_m} m away?",
         "Verify: {label} at about {distance_m} m, {where_me}.")),
}
del P

# Sectors, elevations, distances and counts in words, in the first and second person.
_WHERE = {"front": "in front of {me}", "front-left": "ahead of {me} on the left", "left": "on {my} left",
          "back-left": "behind {me} on the left", "back": "behind {me}", "back-right": "behind {me} on the right",
          "right": "on {my} right", "front-right": "ahead of {me} on the right"}
_ELEVATION = {"far above": "far above {me}", "above": "above {me}", "at ear level": "at {my} ear level",
              "below": "below {me}"}
_DISTANCE = {"within 1 m": "within 1 m of {me}", "1 to 2 m": "1 to 2 m away from {me}",
             "2 to 3.5 m": "2 to 3.5 m away from {me}", "beyond 3.5 m": "more than 3.5 m away from {me}"}
_COUNT = {"1": "one sound", "2": "two sounds", "3": "three sounds", "4": "four sounds"}
_PERSON = {"me": {"me": "me", "my": "my"}, "you": {"me": "you", "my": "your"}}
#: A yes/no claim's kind -> {claim: its words, with {me}/{my} slots for the person}; a label
#: claim is named through the slot "c" instead. Read by the sound-word table's builder too
#: (export/sound_words.template_words): these words never name a sound.
CLAIM_WORDS = {"sector": _WHERE, "elevation": _ELEVATION, "distance": _DISTANCE, "count": _COUNT}


def where(sector: str, person: str = "you") -> str:
    """A sector in words for a question: 'behind me on the left'."""
    return _WHERE[sector].format(**_PERSON[person])


def claim_words(kind: str, claim: str, person: str) -> str:
    """A yes/no question's claim in words (a label claim is named through the slot "c")."""
    table = CLAIM_WORDS.get(kind)
    return claim if table is None else table[claim].format(**_PERSON[person])


def turn_words(yaw_deg: float, person: str) -> str:
    if yaw_deg == 180:
        return "turn around"
    side = "left" if yaw_deg > 0 else "right"
    return f"turn {abs(yaw_deg):.0f} degrees to {_PERSON[person]['my']} {side}"


def name_pools(label: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(seen, held-out) names of a class: DISPLAY and all everyday names but the last are seen."""
    everyday = EVERYDAY_NAMES.get(label, ())
    return (display(label),) + everyday[:-1], everyday[-1:]


def _is(name: str) -> str:
    return "are" if is_plural(name) else "is"


def render(template: str, params: dict, claim_kind: str | None = None) -> str:
    """Fill a template from an item's params (its class names are in params["names"])."""
    fmt: dict = {k: v for k, v in params.items() if k not in NAME_SLOTS and k != "names"}
    names = params.get("names", {})
    for slot in ("a", "b", "label"):
        if slot in names:
            name = names[slot]
            fmt[slot], fmt[capitalise(slot)] = name, capitalise(name)
            fmt[f"{slot}_is"], fmt[f"{capitalise(slot)}_is"] = _is(name), capitalise(_is(name))
    if "claim" in params:
        for person in ("me", "you"):
            fmt[f"claim_{person}"] = names["c"] if "c" in names else claim_words(claim_kind, params["claim"], person)
        fmt["claim_is"] = _is(fmt["claim_me"])
        fmt["Claim_is"] = capitalise(fmt["claim_is"])
    if "sector" in params:
        fmt["where_me"], fmt["where_you"] = where(params["sector"], "me"), where(params["sector"], "you")
    if "yaw_deg" in params:
        fmt["turn_my"], fmt["turn_you"] = turn_words(params["yaw_deg"], "me"), turn_words(params["yaw_deg"], "you")
    return capitalise(template.format(**fmt))
