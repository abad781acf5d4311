"""Where the default edge bundle lives: built once at set-up from the shipped parts, found by
`ask`, `demo`, `listen` and `bench qa` without a path (issue 23).

The default bundle is `binaura export bundle --precision int4` of the shipped program-aided
language model and the shipped encoder. It is not committed (164 MB); `make setup` builds it
(`python -m export.bundle_setup --ensure`) into

    $BINAURA_CACHE/bundle/default-<key>      (default ~/.cache/binaura/...)

where <key> is a digest of what it is built from: the language model's lalm.json and weights,
every file of the encoder folder, the bundle format version and RECIPE_VERSION (the export
recipe: bump it when the export writes different weights for the same inputs). A changed
model, encoder or recipe therefore names a new folder, and a stale bundle is never picked up.
This module only names the folder and reads files (no torch); export/bundle_setup.py builds it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from agent.answer.bundle import FORMAT_VERSION, MANIFEST
from agent.core.digest import sha256_file

#: The export recipe of the default bundle: the decoder graph written from the weights
#: (export/llm_graph.py: fused attention, packed q/k/v), int4 by GPTQ (statistics gathered while
#: generating on CALIBRATION_QUESTIONS, float32 sweeps), float16 embeddings. Bump on any change.
RECIPE_VERSION = 3
PRECISION = "int4"
#: `bundle:default` on a command line names this bundle.
DEFAULT_NAME = "default"


def cache_root() -> Path:
    """$BINAURA_CACHE/bundle (default ~/.cache/binaura/bundle)."""
    return Path(os.environ.get("BINAURA_CACHE", Path.home() / ".cache" / "binaura")) / "bundle"


def bundle_key(model: str | os.PathLike, encoder: str | os.PathLike) -> str:
    """16 hex digits over the model folder's lalm.json and weights, every file of the encoder
    folder (by name and content), the bundle format and the recipe version."""
    h = hashlib.sha256(f"binaura-bundle-v{FORMAT_VERSION}-recipe{RECIPE_VERSION}-{PRECISION}".encode())
    model, encoder = Path(model), Path(encoder)
    for path in [model / "lalm.json", model / "weights.safetensors",
                 *sorted(p for p in encoder.iterdir() if p.is_file())]:
        h.update(f"\n{path.parent.name}/{path.name}:{sha256_file(path)}".encode())
    return h.hexdigest()[:16]


def default_bundle_dir(model: str | os.PathLike, encoder: str | os.PathLike) -> Path:
    """The folder the default bundle of (model, encoder) is built into (it may not exist yet)."""
    return cache_root() / f"default-{bundle_key(model, encoder)}"


def is_built(folder: str | os.PathLike) -> bool:
    """Whether a bundle was written there (its manifest exists: `export bundle` renames the
    folder into place only when complete; the loader then verifies every checksum)."""
    return (Path(folder) / MANIFEST).is_file()
