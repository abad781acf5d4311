"""Shared, dependency-light contracts: audio, geometry, labels, scenes, dataset I/O."""
