"""Top layer: training checkpoints -> deployable bundle, and the `binaura` command line."""
