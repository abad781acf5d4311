"""Binaural scene synthesis: HRTFs and heads, rooms, sound sources, scenes."""
