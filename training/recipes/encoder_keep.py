"""Fine-tuning one side of the encoder while keeping what the other side knew.

Two fine-tunes on real recordings (stages 16 and 17, docs/encoder-history.md) learnt to name
real sounds within an hour but lost part of the synthetic benchmark's direction accuracy:
the whole network moved towards the new heads and sounds. What the real material mends first
is the *what* (class naming); the *where* of stage 9 is already good on KEMAR. So a fine-tune
can hold the direction path still:

- `freeze`: named parts of the model (its child modules: `spatial`, `semantic`, the heads)
  take no gradient and stay in eval mode (BatchNorm keeps its running statistics, dropout is
  off), so they compute exactly what the init computed;
- `keep` (learning without forgetting, Li & Hoiem 2016): the direction heads read both
  branches (dense fusion), so a semantic branch that learns new sounds still moves the
  directions a little. The keep loss holds the student's direction outputs (lateral sine,
  polar-angle distribution, log distance) on the init's (the teacher's), on every frame where
  a source is active, on the same augmented batch: on every clip (`keep_on="all"`), or only on
  the clips drawn as the teacher's own data was (`"familiar"`: procedural and TTS sources, no
  real ambience, no ambisonics, no device effects, a head the teacher trained on), so that
  where the teacher never learnt (a real recording on its class's track) the truth teaches.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from agent.core.errors import BinauraError

#: the heads stage 9 (the shipped encoder, the usual teacher) trained on
TEACHER_HEADS = ("kemar-mit", "kemar-var", "sphere")
KEEP_ON = ("all", "familiar")


def familiar_clips(scenes, heads: tuple[str, ...] = TEACHER_HEADS) -> np.ndarray:
    """(N,) bool: scenes drawn as the teacher's training data was (see the module docstring)."""
    return np.array([s.hrtf in heads and not any("real" in (src.extra or {}) for src in s.sources)
                     and not any(k in (s.extra or {}) for k in ("device", "real_ambience", "ambisonic_order"))
                     for s in scenes], dtype=bool)


#: the parts `freeze` may name: the encoder's child modules that hold weights
PARTS = ("spatial", "semantic", "activity_head", "lateral_head", "polar_head", "distance_head", "class_head")


def check_parts(parts: tuple[str, ...]) -> list[str]:
    """Problems with a `freeze` list, as config errors (empty when it is fine)."""
    bad = [p for p in parts if p not in PARTS]
    if bad:
        return [f"freeze: unknown part(s) {', '.join(bad)}; expected some of {', '.join(PARTS)}"]
    if set(PARTS) <= set(parts):
        return ["freeze: every part is frozen, so nothing would train"]
    return []


def freeze(model: nn.Module, parts: tuple[str, ...]) -> None:
    """No gradient for the named parts' weights, and those parts in eval mode. Call again after
    anything that puts the whole model back in train mode (a validation pass does)."""
    for name in parts:
        part = getattr(model, name)
        part.requires_grad_(False)
        part.eval()


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


class Teacher:
    """The init's weights, frozen, answering the same batches as the student."""

    def __init__(self, model: nn.Module):
        self.model = model.eval().requires_grad_(False)

    @torch.no_grad()
    def outputs(self, spatial: torch.Tensor, semantic: torch.Tensor):
        return self.model(spatial, semantic, training_outputs=True)


def keep_loss(student_out, teacher_out, active: torch.Tensor) -> torch.Tensor:
    """The student's direction outputs held on the teacher's, on active frames (active: (B, T, C)
    of the truth): squared error of the lateral sine, KL(teacher || student) of the polar
    distribution, squared error of the log distance; each averaged over the active frames."""
    _, logd_s, _, _, _, _, sin_s, pol_s = student_out
    _, logd_t, _, _, _, _, sin_t, pol_t = teacher_out
    w = active.float()
    n = w.sum().clamp_min(1.0)
    p_t = torch.softmax(pol_t, dim=-1)
    kl = (p_t * (torch.log_softmax(pol_t, dim=-1) - torch.log_softmax(pol_s, dim=-1))).sum(-1)
    return (((sin_s - sin_t).pow(2) + kl + (logd_s - logd_t).pow(2)) * w).sum() / n


def load_teacher(path: str | None, load) -> Teacher:
    """The teacher from the init checkpoint `path` (load: the checkpoint loader)."""
    if not path:
        raise BinauraError("the keep loss (w_keep > 0) holds the directions on the init's: pass --init (also "
                           "when resuming)")
    model, _ = load(path)
    return Teacher(model)
