"""Output tracks of the encoder (multi-ACCDOA): several slots per class, shared by agent and training.

An encoder with `tracks` = N gives N ACCDOA vectors per class and frame, so two sources of one
class (two people talking) can both be heard. Its outputs are laid out by slot,
s = track * C + class (C classes): the first C slots are track 0 of every class, the next C
track 1, and so on. With one track the slots are the classes, as every encoder before this
option had. `slot_labels` names each slot by its class; everything that reads the ACCDOA axis
(decoding, tracking, the mirror pass) indexes it by slot labels.

Which track a source lands on carries no meaning (training is permutation-invariant over the
track axis), so a consumer that compares two passes slot by slot first aligns their tracks
(`align_tracks`).
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from agent.core.errors import BinauraError

#: tracks per class an encoder may have (DCASE's multi-ACCDOA uses 3)
MAX_TRACKS = 4


def tracks_problem(tracks, where: str = "tracks") -> str | None:
    """What is wrong with `tracks` as a count of output tracks per class, or None when it is an
    integer in 1..MAX_TRACKS (the configs list it among their problems, `check_tracks` raises it)."""
    if isinstance(tracks, bool) or not isinstance(tracks, int) or not 1 <= tracks <= MAX_TRACKS:
        return f"{where} must be an integer in 1..{MAX_TRACKS} (output tracks per class), got {tracks!r}"
    return None


def check_tracks(tracks, where: str = "tracks") -> int:
    """`tracks` as an int when it is 1..MAX_TRACKS (a numpy integer too), else a BinauraError
    naming the range."""
    if isinstance(tracks, np.integer):
        tracks = int(tracks)
    if problem := tracks_problem(tracks, where):
        raise BinauraError(problem)
    return int(tracks)


def slot_labels(labels: tuple[str, ...] | list[str], tracks: int = 1) -> tuple[str, ...]:
    """The label of every output slot (track * C + class): the class labels repeated per track."""
    return tuple(labels) * check_tracks(tracks)


def tracks_of(n_slots: int, n_classes: int, where: str = "outputs") -> int:
    """Tracks per class of an output with n_slots slots over n_classes classes."""
    if n_classes < 1 or n_slots % n_classes:
        raise BinauraError(f"{where}: {n_slots} output slots are not a whole number of tracks of "
                           f"{n_classes} classes")
    return check_tracks(n_slots // n_classes, where)


def align_tracks(reference: np.ndarray, other: np.ndarray, tracks: int,
                 *also: np.ndarray) -> tuple[np.ndarray, ...]:
    """`other` (..., S, 3) with its tracks reordered, per leading index and class, to the
    permutation closest (least squared difference of the ACCDOA vectors) to `reference`'s: two
    passes of one scene may hear the two sources of a class on the tracks the other way round.
    Each array of `also` ((..., S), e.g. the log-distances of the pass) is reordered alike.
    Returns (other, *also); with one track they come back as they are."""
    if check_tracks(tracks) == 1:
        return (other, *also)
    shape = other.shape
    if reference.shape != shape or shape[-1] != 3 or shape[-2] % tracks:
        raise BinauraError(f"align_tracks: two (..., {tracks} x C, 3) arrays expected, got {reference.shape} "
                           f"and {shape}")
    c = shape[-2] // tracks
    lead = shape[:-2]
    ref = reference.reshape(*lead, tracks, c, 3)
    oth = other.reshape(*lead, tracks, c, 3)
    perms = np.array(list(permutations(range(tracks))))  # (P, N)
    cost = np.stack([((ref - oth[..., p, :, :]) ** 2).sum(axis=(-1, -3)) for p in perms])  # (P, ..., C)
    idx = np.moveaxis(perms[np.argmin(cost, axis=0)], -1, -2)  # (..., N, C): slot j of class c takes track idx

    def reorder(x: np.ndarray) -> np.ndarray:
        if x.shape[:len(lead) + 1] != (*lead, tracks * c):
            raise BinauraError(f"align_tracks: {x.shape} does not match the slots of {shape}")
        xt = x.reshape(*lead, tracks, c, *x.shape[len(lead) + 1:])
        ix = idx.reshape(*idx.shape, *([1] * (xt.ndim - idx.ndim)))
        return np.take_along_axis(xt, ix, axis=len(lead)).reshape(x.shape)

    return (reorder(other), *(reorder(x) for x in also))
