"""A trained audio-language model as the live agent's answerer (torch; the edge bundle issue
moves it to ONNX Runtime). It reads what the agent's streaming encoder already computed over
the last `window_s` seconds (no second encoder pass), so a question costs only the prompt's
prefill and the answer's tokens, and the answer streams out token by token."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import numpy as np

from agent.core.prompt import heard_line
from agent.core.seld import heard_sources, seld_vector
from training.models.lalm import load_lalm

#: the clip length the model was trained on (the synthesizer's 5 s scenes)
WINDOW_S = 5.0
MAX_NEW_TOKENS = 48


class LiveLalmAnswerer:
    """callable(question, pipeline) -> answer text chunks (agent.run.Runner's answerer)."""

    def __init__(self, path: str | os.PathLike, window_s: float = WINDOW_S, max_new_tokens: int = MAX_NEW_TOKENS):
        self.model, self.meta = load_lalm(path)
        self.window_s, self.max_new_tokens = window_s, max_new_tokens
        self.name = f"lalm:{path}"
        self._lock = threading.Lock()  # one question at a time through the model

    def inputs(self, question: str, pipeline) -> dict:
        """The model's inputs for a question about the last window of the stream."""
        frames = pipeline.recent_frames(self.window_s)
        if frames is None or frames.n == 0:
            n, rt = 1, pipeline.rt
            c, k = len(rt.labels), len(rt.slot_labels)  # classes, slots (tracks x classes)
            frames_np = (np.zeros((n, k, 3), np.float32), np.zeros((n, k), np.float32), np.full((n, c), -10, np.float32))
            spatial = np.zeros((n, self.model.cfg.projector.spatial_dim), np.float32)
            semantic = np.zeros((n, self.model.cfg.projector.semantic_dim), np.float32)
        else:
            frames_np = (frames.accdoa, frames.log_distance, frames.class_logits)
            spatial, semantic = frames.spatial_emb, frames.semantic_emb
        context = None
        if self.model.cfg.heard_line:
            rt = pipeline.rt
            context = heard_line(heard_sources(frames_np[0], frames_np[1], rt.slot_labels, rt.output_rate_hz, rt.decode))
        item = self.model.encode(question, None, None, context)
        if self.model.n_audio:
            item.update(spatial=spatial, semantic=semantic, seld=seld_vector(*frames_np))
        return item

    def __call__(self, question: str, pipeline) -> Iterator[str]:
        from transformers import TextIteratorStreamer  # noqa: PLC0415

        with self._lock:
            item = self.inputs(question, pipeline)
            m = self.model
            streamer = TextIteratorStreamer(m.tokenizer, skip_prompt=False, skip_special_tokens=True)
            kwargs = dict(m.greedy_kwargs([item], self.max_new_tokens), streamer=streamer)
            worker = threading.Thread(target=self._generate, args=(kwargs,), daemon=True)
            worker.start()
            done = False
            try:
                for chunk in streamer:
                    if chunk:
                        yield chunk
                done = True
            finally:  # a caller that stops reading early still waits for the model to finish
                if not done:  # (an exhausted streamer must not be read again: it would block)
                    for _ in streamer:
                        pass
                worker.join()

    def _generate(self, kwargs) -> None:
        import torch  # noqa: PLC0415

        with torch.no_grad():
            self.model.llm.generate(**kwargs)
