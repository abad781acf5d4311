"""Benchmarks: localization metrics (SELD-style matching), QA scoring, baselines."""
