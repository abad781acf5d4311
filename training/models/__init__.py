"""torch models: the spatial (SELD) encoder, the semantic encoder and their builders."""
