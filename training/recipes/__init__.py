"""Training recipes: stage 1 (encoders), later SFT and GRPO."""
