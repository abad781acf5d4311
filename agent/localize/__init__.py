"""Localizers the runtime can run without a trained model."""
