"""Spoken questions and "what did they say": silero VAD + faster-whisper, offline, no torch.

models.py finds the packaged weights, vad.py gates speech, asr.py recognises it, steer.py
points a binaural signal at a talker, spoken.py wires them to the capture stream.
"""
