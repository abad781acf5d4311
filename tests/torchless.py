"""Run a script in a fresh Python whose training stack cannot be imported: the agent's
layering contract (ARCHITECTURE.md: the agent and the firmware bridge never import torch)."""

from __future__ import annotations

import subprocess
import sys

#: The modules the agent may not need at run time; importing any of them raises ImportError.
BLOCKED = ("torch", "transformers", "peft", "trl", "optimum", "training", "export")

_BLOCKER = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {set(BLOCKED)!r}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
"""


def run_without_torch(script: str, *args, timeout: float | None = None,
                      env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -c script args...` with BLOCKED unimportable; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-c", _BLOCKER + script, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)
