""""What is the person on my left saying?": the speech track's span, transcribed and placed."""

import numpy as np

from agent.answer.tracks import TrackAnswerer
from agent.capture.block import PcmBlock
from agent.localize.encoder import EncoderRuntime
from agent.pipeline import Pipeline
from tests.agent.test_voice_vad import espeak, place


def test_the_words_of_the_talker_on_the_left_come_back_with_where_they_came_from():
    speech = espeak("Please bring me the red cup from the kitchen", 48_000, words_per_min=140) * 0.3
    pad = np.zeros((2, 24_000), np.float32)
    audio = np.concatenate([pad, place(speech, 90.0, 48_000), pad], axis=1).astype(np.float32)
    pipe = Pipeline(EncoderRuntime())
    for i in range(0, audio.shape[1], 4800):
        pipe.process(PcmBlock(i / 48_000, 48_000, audio[:, i:i + 4800]))
    answer = "".join(TrackAnswerer()("What is the person on my left saying?", pipe))
    assert answer.startswith("Someone from the ") and "left" in answer.split("said")[0]
    assert "cup" in answer and "kitchen" in answer
    assert TrackAnswerer().answer("Where is the person talking?", pipe.heard_tracks(5.0)).startswith("The voice is")
