"""Permutation-invariant training over the output tracks of a multi-track encoder.

An encoder with N tracks per class (multi-ACCDOA, agent.core.tracks) has N slots per class,
and which of them a source should land on is arbitrary: the targets fill tracks in onset
order (training/models/targets.py), the network may as well answer the other way round. So
the loss is taken under the best assignment (Yu et al. 2017; DCASE 2022's multi-ACCDOA trains
so, there per frame with ADPIT): for every clip and class, each of the N! orders of the
target's track axis (N <= 4: at most 24) is scored by the loss its slots would give (activity
cross-entropy, lateral-sine and log-distance squared errors and polar cross-entropy, each with
the weight and normaliser of `seld_loss`), the cheapest is kept, and `seld_loss` then runs on
the targets so reordered. Its value is the sum over (clip, class) of the minimum, normalised as
before; the monitored frame angle compares each slot with the target it was assigned.

The assignment holds for a whole clip, not per frame: a source keeps its track while it sounds.
With one track there is nothing to choose and `seld_loss` runs on the targets as given.
"""

from __future__ import annotations

import math
from itertools import permutations

import torch
from torch import nn


def polar_soft_targets(accdoa_t: torch.Tensor, k: int, smoothing_bins: float) -> torch.Tensor:
    """Unit vectors (..., 3) -> Gaussian-smoothed polar-bin targets (..., k) around the ear axis."""
    polar_t = torch.atan2(accdoa_t[..., 2], accdoa_t[..., 0])  # angle around the ear axis, 0 = ahead
    centres = torch.arange(k, device=polar_t.device) * (2 * math.pi / k)
    d = torch.remainder(centres - polar_t.unsqueeze(-1) + math.pi, 2 * math.pi) - math.pi
    soft = torch.exp(-0.5 * (d / (smoothing_bins * 2 * math.pi / k)).pow(2))
    return soft / soft.sum(-1, keepdim=True)


def polar_weight(w: torch.Tensor, accdoa_t: torch.Tensor, polar_ok: torch.Tensor | None) -> torch.Tensor:
    """The polar loss's weight per (clip, frame, slot): active frames weighted by cos^2(lateral)
    (the polar angle is undefined at the ear axis itself), zero on clips whose head carries no
    polar cues (`polar_ok` (B,), when given)."""
    wp = w * (accdoa_t[..., 0].pow(2) + accdoa_t[..., 2].pow(2))
    if polar_ok is not None:
        wp = wp * polar_ok.to(wp.dtype)[:, None, None]
    return wp


@torch.no_grad()
def best_track_order(model_out, accdoa_t: torch.Tensor, logd_t: torch.Tensor, active_t: torch.Tensor, cfg,
                     polar_ok: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, N) long: for each clip and class, the target track each output track is given
    (the order of the target's track axis with the least loss). Targets (B, T, N * C, ...)."""
    _, logd, class_logits, _, _, activity_logits, sin_lat, polar_logits = model_out
    b, t, s = active_t.shape
    c = class_logits.shape[-1]
    n = s // c
    k = polar_logits.shape[-1]
    w = active_t.float()
    n_active = w.sum().clamp_min(1.0)
    wp = polar_weight(w, accdoa_t, polar_ok)
    wp_sum = wp.sum().clamp_min(1.0)

    def tracks(x):  # (B, T, S, ...) -> (B, T, N, C, ...)
        return x.reshape(b, t, n, c, *x.shape[3:])

    # pred[:, :, j] against target[:, :, i]: (B, T, N_pred, N_target, C)
    pa, pl, pd = (tracks(x).unsqueeze(3) for x in (activity_logits, sin_lat, logd))
    pp = torch.log_softmax(tracks(polar_logits), dim=-1).unsqueeze(3)  # (B, T, N, 1, C, K)
    tw, ty, td, twp = (tracks(x).unsqueeze(2) for x in (w, accdoa_t[..., 1], logd_t, wp))
    soft = tracks(polar_soft_targets(accdoa_t, k, cfg.polar_smoothing_bins)).unsqueeze(2)  # (B, T, 1, N, C, K)
    act = nn.functional.binary_cross_entropy_with_logits(pa.expand(-1, -1, -1, n, -1), tw.expand(-1, -1, n, -1, -1),
                                                         reduction="none") / (b * t * s)
    cost = (cfg.w_activity * act + cfg.w_lateral * (pl - ty).pow(2) * tw / n_active
            + cfg.w_distance * (pd - td).pow(2) * tw / n_active
            + cfg.w_polar * -(soft * pp).sum(-1) * twp / wp_sum).sum(1)  # (B, N_pred, N_target, C)
    orders = torch.tensor(list(permutations(range(n))), device=cost.device)  # (P, N)
    # the loss of order p: sum over output tracks j of cost[j, p[j]]
    per = cost[:, torch.arange(n, device=cost.device)[None, :], orders, :].sum(2)  # (B, P, C)
    best = per.argmin(dim=1)  # (B, C)
    return orders[best]  # (B, C, N)


def reorder_tracks(x: torch.Tensor, order: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Targets x (B, T, N * C, ...) with output track j of class c given target track order[b, c, j]."""
    b, t, s = x.shape[:3]
    n = s // n_classes
    xt = x.reshape(b, t, n, n_classes, *x.shape[3:])
    idx = order.transpose(1, 2)[:, None]  # (B, 1, N, C)
    idx = idx.reshape(*idx.shape, *([1] * (xt.dim() - 4))).expand(-1, t, -1, -1, *x.shape[3:])
    return torch.gather(xt, 2, idx).reshape(x.shape)


def pit_targets(model_out, accdoa_t: torch.Tensor, logd_t: torch.Tensor, active_t: torch.Tensor, cfg,
                polar_ok: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The targets with each (clip, class)'s tracks in the order of least loss
    (`best_track_order`); as given when the outputs have one track per class."""
    n_classes = model_out[2].shape[-1]
    if active_t.shape[-1] == n_classes:
        return accdoa_t, logd_t, active_t
    order = best_track_order(model_out, accdoa_t, logd_t, active_t, cfg, polar_ok)
    return tuple(reorder_tracks(x, order, n_classes) for x in (accdoa_t, logd_t, active_t))
