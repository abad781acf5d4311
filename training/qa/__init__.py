"""Hierarchical spatial QA (L1 identification, L2 relations, L3 reasoning) from scene metadata."""
