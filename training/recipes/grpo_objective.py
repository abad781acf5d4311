"""The GRPO objective, as trl 1.16 computes it (grpo_trainer.py: advantages ~l.2760,
_compute_loss ~l.3020) for `importance_sampling_level="token"`, `num_iterations=1`,
`scale_rewards="group"`; a test checks `grpo_loss` against `GRPOTrainer._compute_loss` on a
text-only model. The loop that samples and steps is training/recipes/grpo.py. As trl:
- G completions per prompt, sampled (temperature, top_p, no top-k) until the end-of-turn
  token or `max_new_tokens`; the completion mask covers the tokens up to and including the
  first end-of-turn (trl's);
- group-normalised advantages (r - group mean) / (group std + 1e-4), std with Bessel's
  correction (trl's `nanstd`);
- per-token log-probabilities of the completions under logits / temperature (trl's), one
  forward over prompt + completion embeddings with the audio slot filled as in SFT;
- clipped ratio with epsilon_low / epsilon_high, old log-probs = the current ones detached;
- KL to the reference, exp(ref - logp) - (ref - logp) - 1, times the ratio when
  `bias_correction_kl` (trl's `use_bias_correction_kl`, default True), weighted by beta;
- "grpo": mean over sequences of the per-sequence token mean; "bnpo": token mean over the
  process's batch; "dapo": the token sum divided by all processes' completion tokens over
  the number of processes (trl's normaliser: with the gradients averaged over the processes,
  the step follows the whole generation batch's token sum over its token count; one
  process: the same as bnpo).
"""

from __future__ import annotations

import torch

from agent.core.errors import BinauraError

LOSS_TYPES = ("grpo", "bnpo", "dapo")
STD_EPS = 1e-4  # trl's: advantages = (r - mean) / (std + 1e-4)


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N,) rewards, consecutive groups of `group_size` -> (N,) (r - group mean) / (group std + 1e-4).
    std with Bessel's correction, as trl's nanstd; a group of one has std 0 (advantage 0)."""
    if rewards.numel() % group_size:
        raise BinauraError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    g = rewards.view(-1, group_size)
    mean = g.mean(dim=1, keepdim=True)
    std = g.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    return ((g - mean) / (std + STD_EPS)).view(-1)


def per_token_kl(per_token_logps: torch.Tensor, ref_per_token_logps: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of KL(policy || reference) per token: exp(ref - logp) - (ref - logp) - 1."""
    d = ref_per_token_logps - per_token_logps
    return torch.exp(d) - d - 1


def grpo_loss(per_token_logps: torch.Tensor, old_per_token_logps: torch.Tensor,
              ref_per_token_logps: torch.Tensor | None, advantages: torch.Tensor, mask: torch.Tensor,
              epsilon_low: float, epsilon_high: float, beta: float, loss_type: str = "grpo",
              bias_correction_kl: bool = True, num_items: float | torch.Tensor | None = None) -> torch.Tensor:
    """The scalar GRPO loss. Log-prob tensors and mask (B, T); advantages (B,) or (B, T).
    num_items: the "dapo" normaliser (the generation batch's completion tokens; default mask.sum())."""
    if loss_type not in LOSS_TYPES:
        raise BinauraError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    mask = mask.to(per_token_logps.dtype)
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    coef_1 = torch.exp(per_token_logps - old_per_token_logps)
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
    per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv)
    if beta != 0.0:
        kl = per_token_kl(per_token_logps, ref_per_token_logps)
        per_token_loss = per_token_loss + beta * (kl * coef_1 if bias_correction_kl else kl)
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    n = mask.sum() if num_items is None else torch.as_tensor(num_items, dtype=mask.dtype)
    return (per_token_loss * mask).sum() / n.clamp(min=1.0)


def completion_mask(completion_ids: torch.Tensor, stop_id: int) -> torch.Tensor:
    """(B, T) int: 1 up to and including the first stop token (every token when there is none)."""
    is_stop = completion_ids == stop_id
    first = torch.where(is_stop.any(1), is_stop.int().argmax(1), torch.full_like(is_stop[:, 0], is_stop.shape[1],
                                                                                   dtype=torch.long))
    return (torch.arange(is_stop.shape[1], device=completion_ids.device)[None] <= first[:, None]).int()


def token_logps(llm, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, completion_ids: torch.Tensor,
                mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(B, T) log-probabilities of the completion tokens, which end `inputs_embeds` (B, P + T, H),
    under logits / temperature; 0 where mask is 0 (as trl's fused head)."""
    t = completion_ids.shape[1]
    logits = llm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, logits_to_keep=t + 1).logits[:, :-1]
    logps = torch.log_softmax(logits.float() / temperature, dim=-1)
    logps = torch.gather(logps, -1, completion_ids.unsqueeze(-1)).squeeze(-1)
    return logps.masked_fill(mask == 0, 0.0)


__all__ = ["LOSS_TYPES", "STD_EPS", "completion_mask", "group_advantages", "grpo_loss", "per_token_kl",
           "token_logps"]
