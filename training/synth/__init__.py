"""Binaural scene synthesis: HRTFs and heads, rooms, sound sources, scenes."""

# The composition root: registering the synthesis kit's resolver here (kit.py calls
# assets.register on import) lets every source honour BINAURA_SYNTH_KIT without importing
# the kit (issue 22: the kit depends on the sources, never the reverse).
from training.synth import kit as _kit  # noqa: F401, E402
