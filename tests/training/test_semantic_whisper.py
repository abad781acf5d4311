"""A Whisper-style semantic encoder loads from a local folder (tiny random config), never the network."""

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from agent.core.errors import BinauraError  # noqa: E402
from agent.core.labels import LABELS  # noqa: E402
from training.models.semantic import load_whisper_encoder  # noqa: E402


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    d = tmp_path_factory.mktemp("whisper")
    cfg = WhisperConfig(d_model=16, encoder_layers=1, encoder_attention_heads=2, decoder_layers=1,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                        vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    WhisperEncoder(cfg).save_pretrained(d)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(d)
    return d


def test_whisper_encoder_gives_frames_on_the_encoder_grid(tiny_whisper):
    enc = load_whisper_encoder(str(tiny_whisper))
    audio = (np.random.default_rng(0).standard_normal((2, 48_000 * 3)) * 0.1).astype(np.float32)
    x, n_out = enc.features(audio, 48_000)
    assert tuple(x.shape) == (1, 80, 3000)  # Whisper pads to 30 s
    assert n_out == 30  # 3 s at 10 frames per second
    logits, emb = enc(x, n_out)
    assert tuple(logits.shape) == (1, 30, len(LABELS)) and tuple(emb.shape) == (1, 30, 16)


def test_missing_whisper_is_a_clear_error_not_a_download(tmp_path):
    with pytest.raises(BinauraError, match="nothing is downloaded"):
        load_whisper_encoder(str(tmp_path / "no-such-model"))
