"""Low-order ambisonic rendering: exact harmonics, order ranks accuracy, lateral cues survive."""

import numpy as np
import pytest

from agent.core.errors import BinauraError, ConfigError
from training.synth.ambisonics import (
    AMBISONIC_ORDER_KEY,
    AmbisonicHead,
    Decoder,
    lebedev26,
    real_sh,
    render_ambisonic,
)
from training.synth.config import SynthConfig
from training.synth.heads import Head, spherical_head_set
from training.synth.measured_heads import HorizontalHrtfSet
from training.synth.room import anechoic_ir, render_paths
from training.synth.scenes import render_scene, sample_spec

from .test_measured_heads import ild_db, interaural_delay_us

RATE = 48_000
DIRECTIONS = [(90.0, 0.0), (30.0, 0.0), (-60.0, 20.0), (135.0, 0.0), (-150.0, -20.0), (10.0, 40.0)]


@pytest.fixture(scope="module")
def kemar_head(kemar):
    return Head("kemar-mit", kemar)


def test_harmonics_are_orthonormal_on_the_loudspeaker_grid():
    az, el, w = lebedev26()
    y = real_sh(3, az, el)
    np.testing.assert_allclose((y * w[:, None]).T @ y, np.eye(16), atol=1e-12)
    # first order is the plane wave's direction: Y_1^{-1,0,1} = sqrt(3) (y, z, x)
    np.testing.assert_allclose(real_sh(1, [90.0], [0.0])[0], [1.0, np.sqrt(3), 0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_decoder_reproduces_the_encoded_field(order):
    dec = Decoder(order)
    az, el = np.array([20.0, -100.0, 170.0]), np.array([0.0, 35.0, -50.0])
    g = dec.speaker_gains(az, el)  # (Q, L)
    np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-12)  # the omni part is kept
    np.testing.assert_allclose(g @ real_sh(order, dec.speaker_az, dec.speaker_el), real_sh(order, az, el),
                               atol=1e-12)  # re-encoding the loudspeakers gives the source back


def test_unknown_order_is_refused():
    with pytest.raises(BinauraError, match="order must be one of"):
        Decoder(4)


def spectral_distance_db(a, b):
    f = np.fft.rfftfreq(4096, 1 / RATE)
    band = (f > 200) & (f < 16_000)
    sa, sb = (20 * np.log10(np.abs(np.fft.rfft(h, 4096, axis=-1))[:, band] + 1e-9) for h in (a, b))
    return float(np.sqrt(np.mean((sa - sb) ** 2)))


def errors(head, order):
    amb = AmbisonicHead(head, order)
    spec, itd, ild = [], [], []
    for az, el in DIRECTIONS:
        ref, got = anechoic_ir(head, az, el, 1.0), anechoic_ir(amb, az, el, 1.0)
        spec.append(spectral_distance_db(ref, got))
        itd.append(abs(interaural_delay_us(ref) - interaural_delay_us(got)))
        ild.append(abs(ild_db(ref) - ild_db(got)))
    return np.mean(spec), np.mean(itd), np.mean(ild)


def test_third_order_is_closer_to_the_direct_render_than_first(kemar_head):
    spec1, itd1, ild1 = errors(kemar_head, 1)
    spec3, itd3, ild3 = errors(kemar_head, 3)
    assert spec3 < spec1 - 1.0  # dB of log-spectral distance, 200 Hz - 16 kHz
    assert itd3 < 0.5 * itd1 and itd3 < 40  # us
    assert ild3 < ild1


@pytest.mark.parametrize("order", [1, 2, 3])
def test_side_source_still_leads_in_the_near_ear(kemar_head, order):
    amb = AmbisonicHead(kemar_head, order)
    left, right = anechoic_ir(amb, 90.0, 0.0, 1.0), anechoic_ir(amb, -90.0, 0.0, 1.0)
    assert interaural_delay_us(left) > 250 and ild_db(left) > 3
    assert interaural_delay_us(right) < -250 and ild_db(right) < -3


def test_encode_decode_chain_equals_the_folded_response(kemar_head):
    dry = np.random.default_rng(0).standard_normal(2400).astype(np.float32)
    chain = render_ambisonic(dry, kemar_head, 2, 60.0, 15.0, distance_m=1.0)
    # the loudspeakers are plain far-field paths: compare without anechoic_ir's near-field level correction
    ir = render_paths(AmbisonicHead(kemar_head, 2), [60.0], [15.0], [1.0], [1.0], 1200)
    folded = np.stack([np.convolve(dry, h) for h in ir])
    n = min(chain.shape[1], folded.shape[1])
    err = np.sqrt(np.mean((chain[:, :n] - folded[:, :n]) ** 2) / np.mean(folded[:, :n] ** 2))
    assert err < 2e-3


def test_horizontal_heads_get_a_two_dimensional_decode():
    sphere = spherical_head_set(RATE)
    ring = sphere.elevation_deg == 0
    flat = HorizontalHrtfSet("ring", RATE, sphere.azimuth_deg[ring], sphere.elevation_deg[ring],
                             sphere.aligned[ring], sphere.delays[ring], min_elevation_deg=0.0)
    amb = AmbisonicHead(Head("ring", flat), 3)
    assert len(amb.decoder.speaker_az) == 8 and np.all(amb.decoder.speaker_el == 0)
    assert interaural_delay_us(anechoic_ir(amb, 90.0, 0.0, 1.0)) > 400


def test_scenes_take_an_ambisonic_share_and_say_so():
    base = dict(duration_s=0.5, event_duration_s=(0.3, 0.5), rt60_s=(0.2, 0.3), heads=("kemar-mit",),
                max_sources=1, p_reverberant=0.5)
    plain = SynthConfig(**base).validate()
    amb = SynthConfig(**base, p_ambisonic=1.0, ambisonic_orders=(1, 3)).validate()
    orders = set()
    for i in range(8):
        a, b = sample_spec(plain, 5, i), sample_spec(amb, 5, i)
        assert AMBISONIC_ORDER_KEY not in a.extra
        assert (a.sources, a.room, a.render_seed) == (b.sources, b.room, b.render_seed)  # only the renderer differs
        orders.add(b.extra[AMBISONIC_ORDER_KEY])
    assert orders <= {1, 2, 3} and len(orders) > 1
    audio, scene = render_scene(sample_spec(amb, 5, 0), amb)
    assert scene.extra[AMBISONIC_ORDER_KEY] in (1, 2, 3) and np.isfinite(audio).all() and audio.std() > 0
    with pytest.raises(ConfigError, match="p_ambisonic") as e:
        SynthConfig(p_ambisonic=1.5, ambisonic_orders=(0, 4)).validate()
    assert "ambisonic_orders" in str(e.value)
