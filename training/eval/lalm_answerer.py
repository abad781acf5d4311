"""A trained audio-language model as an Answerer (torch), for `bench qa --model PATH` and `ask`.

The encoder runs from the checkpoint the language model was trained on (its SHA-256 is in
lalm.json; another encoder is refused), the way the training cache ran it; a clip's encoder
outputs are computed once and every question about it is answered in one batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from agent.core.digest import sha256_file
from agent.core.errors import BinauraError
from agent.core.predictor import Clip
from agent.core.prompt import heard_line
from agent.core.scene import QAItem
from training.models.encoder import load_checkpoint
from training.models.lalm import load_lalm
from training.recipes.lalm_cache import DEFAULT_ENCODER_CHECKPOINT, encoder_outputs
from training.recipes.lalm_data import heard_from

#: Tokens an answer may take: a letter and a short sentence.
MAX_NEW_TOKENS = 40


class LalmAnswerer:
    needs_audio = True

    def __init__(self, path: str | os.PathLike, encoder_checkpoint: str | os.PathLike | None = None,
                 max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int = 16, name: str | None = None):
        self.model, self.meta = load_lalm(path)
        enc = Path(encoder_checkpoint or DEFAULT_ENCODER_CHECKPOINT)
        want = self.meta.get("encoder_checkpoint_sha256")
        if want and sha256_file(enc) != want:
            raise BinauraError(f"{path} was trained on the outputs of another encoder (SHA-256 {want[:12]}...); "
                               f"{enc} is not it: pass that encoder's checkpoint, or retrain the language model "
                               f"on this encoder")
        self.encoder, _ = load_checkpoint(enc)
        self.mirror_tta = bool(self.meta.get("encoder_mirror_tta", True))
        self.labels = tuple(self.meta.get("labels") or self.encoder.cfg.labels)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.name = name or f"lalm:{path}"
        self._clip_id: str | None = None
        self._feats: dict | None = None

    def hear(self, clip: Clip) -> dict:
        """The clip's encoder outputs as the model reads them (kept for the clip's next questions)."""
        if clip.scene_id != self._clip_id or self._feats is None:
            if clip.audio is None:
                raise BinauraError(f"{clip.scene_id}: the language model needs the clip's audio")
            audio = clip.audio
            if self.model.cfg.audio_input == "mono":
                audio = np.repeat(audio.mean(axis=0, keepdims=True), 2, axis=0)
            sp, se, seld = encoder_outputs(self.encoder, audio, clip.sample_rate_hz, self.mirror_tta, clip.scene_id)
            self._clip_id, self._feats = clip.scene_id, {"spatial": sp, "semantic": se, "seld": seld}
        return self._feats

    def heard_sources(self, clip: Clip) -> list:
        """What the encoder decoded in the clip, with time spans (for --verbose and the heard line)."""
        f = self.hear(clip)
        return heard_from(f["seld"], self.labels, self.encoder.cfg.output_rate_hz)

    def answer_many(self, clip: Clip, items: list[QAItem]) -> list[str]:
        feats = self.hear(clip)
        context = heard_line(self.heard_sources(clip)) if self.model.cfg.heard_line else None
        out = []
        for i in range(0, len(items), self.batch_size):
            batch = [{**self.model.encode(q.question, q.options, None, context), **feats}
                     for q in items[i:i + self.batch_size]]
            out += self.model.generate(batch, self.max_new_tokens)
        return out

    def answer(self, clip: Clip, item: QAItem) -> str:
        return self.answer_many(clip, [item])[0]
