import numpy as np
import pytest

from agent.core.scene import Scene, SourceEstimate, SourceLabel
from training.eval.metrics import localization_metrics, match_clip


def scene(*sources, room=None, head="kemar-mit"):
    return Scene("s", "a.wav", 48000, 5.0, [SourceLabel(lab, az, el, d, 0.0, 1.0) for lab, az, el, d in sources],
                 room, head)


def f1_keys(m):
    """(detection_f1, detection_f1_20deg_any_class, detection_f1_unlocated)"""
    return m["detection_f1"], m["detection_f1_20deg_any_class"], m["detection_f1_unlocated"]


def test_hungarian_matching_pairs_nearest_sources():
    sc = scene(("dog", 30.0, 0.0, 2.0), ("siren", -90.0, 0.0, 3.0))
    preds = [SourceEstimate(-80.0, 0.0, 3.5, "siren"), SourceEstimate(40.0, 0.0, 1.0, "dog")]
    m = localization_metrics([match_clip(sc, preds)])
    assert m["angular_error_mean_deg"] == pytest.approx(10.0)
    assert m["class_accuracy"] == 1.0 and m["detection_f1"] == 1.0
    assert m["distance_mae_m"] == pytest.approx(0.75) and m["distance_er05"] == pytest.approx(0.5)


def test_by_label_pairs_each_sound_with_its_own_class():
    """A classifier that swaps where two sounds are: by direction each truth gets the other
    class's estimate; by label each gets its own, with the real error, and an unmatched class
    stays unpaired."""
    sc = scene(("dog", 150.0, 0.0, 2.0), ("telephone", -80.0, 0.0, 3.0))
    preds = [SourceEstimate(-70.0, 0.0, 3.0, "dog"), SourceEstimate(30.0, 0.0, 2.0, "telephone"),
             SourceEstimate(0.0, 0.0, 1.0, "siren")]
    by_dir = {p.true_index: p for p in match_clip(sc, preds).pairs}
    assert by_dir[0].pred_index == 1 and by_dir[1].pred_index == 0
    by_label = {p.true_index: p for p in match_clip(sc, preds, by_label=True).pairs}
    assert set(by_label) == {0, 1} and by_label[0].pred_index == 0 and by_label[1].pred_index == 1
    assert by_label[0].angular_deg == pytest.approx(140.0) and all(p.class_ok for p in by_label.values())
    assert by_dir[0].front_back and not by_label[0].front_back


def test_misses_and_false_alarms_enter_f1_only():
    sc = scene(("dog", 30.0, 0.0, 2.0), ("siren", -90.0, 0.0, 3.0))
    m = localization_metrics([match_clip(sc, [SourceEstimate(30.0, 0.0, None, "dog")])])
    assert m["detection_f1"] == pytest.approx(2 * 1 / (2 + 1))
    assert m["angular_error_mean_deg"] == 0.0
    preds = [SourceEstimate(30.0, 0.0, None, "dog"), SourceEstimate(-90.0, 0.0, None, "siren"),
             SourceEstimate(170.0, 0.0, None, "dog")]
    m = localization_metrics([match_clip(sc, preds)])
    assert f1_keys(m) == (pytest.approx(4 / 5),) * 3


def test_a_detection_of_the_right_class_counts_only_within_20_deg():
    """DCASE F_20deg: the right class 170 deg off is a miss and a false alarm (the count-only
    form still calls it a hit); 15 deg off is a hit. The gate is on the great-circle angle:
    35 deg of azimuth at 60 deg elevation is 17 deg on the sphere, 25 deg of elevation is 25."""
    sc = scene(("dog", 30.0, 0.0, 2.0))
    far = localization_metrics([match_clip(sc, [SourceEstimate(-160.0, 0.0, 2.0, "dog")])])
    assert far["detection_f1"] == 0.0  # TP 0, FP 1, FN 1
    assert f1_keys(far) == (0.0, 0.0, 1.0)
    near = localization_metrics([match_clip(sc, [SourceEstimate(45.0, 0.0, 2.0, "dog")])])
    assert f1_keys(near) == (1.0, 1.0, 1.0)
    from training.eval.metrics import DETECTION_GATE_DEG

    for off, f1 in ((DETECTION_GATE_DEG - 0.1, 1.0), (DETECTION_GATE_DEG + 0.1, 0.0)):
        m = localization_metrics([match_clip(sc, [SourceEstimate(30.0 + off, 0.0, None, "dog")])])
        assert m["detection_f1"] == f1
    high = scene(("dog", 0.0, 60.0, 2.0))
    assert localization_metrics([match_clip(high, [SourceEstimate(35.0, 60.0, None, "dog")])])["detection_f1"] == 1.0
    assert localization_metrics([match_clip(high, [SourceEstimate(0.0, 35.0, None, "dog")])])["detection_f1"] == 0.0
    # two sources, one detected in place and one 170 deg off: TP 1, FP 1, FN 1
    two = scene(("dog", 30.0, 0.0, 2.0), ("siren", -90.0, 0.0, 3.0))
    m = localization_metrics([match_clip(two, [SourceEstimate(30.0, 0.0, None, "dog"),
                                              SourceEstimate(80.0, 0.0, None, "siren")])])
    assert f1_keys(m) == (pytest.approx(0.5), pytest.approx(0.5), 1.0)


def test_a_detection_of_the_wrong_class_is_a_miss_however_close():
    """5 deg off with the wrong class: a miss and a false alarm for detection_f1, a hit for
    the class-blind forms."""
    m = localization_metrics([match_clip(scene(("dog", 30.0, 0.0, 2.0)), [SourceEstimate(35.0, 0.0, 2.0, "siren")])])
    assert m["detection_f1"] == 0.0
    assert f1_keys(m) == (0.0, 1.0, 1.0)
    assert m["angular_error_mean_deg"] == pytest.approx(5.0) and m["class_accuracy"] == 0.0


def test_classes_swapped_between_two_sources_are_misses():
    """Each prediction sits on a source but names the other one's class: matched class by
    class (DCASE), each is 120 deg from its own class's source, so TP 0, FP 2, FN 2."""
    sc = scene(("dog", 30.0, 0.0, 2.0), ("siren", -90.0, 0.0, 3.0))
    m = localization_metrics([match_clip(sc, [SourceEstimate(30.0, 0.0, 2.0, "siren"),
                                              SourceEstimate(-90.0, 0.0, 3.0, "dog")])])
    assert m["detection_f1"] == 0.0
    assert f1_keys(m) == (0.0, 1.0, 1.0)
    # two of one class: matched within the class by the Hungarian algorithm on the angle
    dogs = scene(("dog", 0.0, 0.0, 2.0), ("dog", 90.0, 0.0, 2.0))
    m = localization_metrics([match_clip(dogs, [SourceEstimate(85.0, 0.0, None, "dog"),
                                               SourceEstimate(5.0, 0.0, None, "dog")])])
    assert m["detection_f1"] == 1.0


def test_a_model_without_classes_has_null_class_aware_f1_and_every_key():
    """GCC-PHAT names no class: detection_f1 is null everywhere (it cannot score a class-aware
    hit), the location-only gated F1 scores it, and every key is present in every condition.
    A classifying model that predicted nothing in one condition scores 0 there, not null."""
    one, two = scene(("dog", 30.0, 0.0, 2.0)), scene(("dog", 30.0, 0.0, 2.0), ("siren", -90.0, 0.0, 3.0))
    m = localization_metrics([match_clip(one, [SourceEstimate(40.0)]),
                              match_clip(two, [SourceEstimate(30.0), SourceEstimate(90.0)])])
    assert m["detection_f1"] is None
    from training.eval.metrics import EXTRA_KEYS, METRIC_KEYS

    for mm in [m, *m["by_condition"].values()]:
        assert set(METRIC_KEYS) | set(EXTRA_KEYS) <= set(mm)
        assert mm["detection_f1"] is None
    assert m["detection_f1_20deg_any_class"] == pytest.approx(2 * 2 / (3 + 3))
    assert m["by_condition"]["n_sources=2"]["detection_f1_20deg_any_class"] == pytest.approx(0.5)
    m = localization_metrics([match_clip(one, [SourceEstimate(30.0, 0.0, None, "dog")]), match_clip(two, [])])
    assert m["by_condition"]["n_sources=2"]["detection_f1"] == 0.0
    assert m["detection_f1"] == pytest.approx(2 / (3 + 1))


def test_front_back_confusion_is_counted():
    sc = scene(("dog", 150.0, 0.0, 2.0))
    m = localization_metrics([match_clip(sc, [SourceEstimate(32.0)])])
    assert m["front_back_confusion"] == 1.0 and m["er20"] == 1.0
    assert m["lateral_error_mean_deg"] == pytest.approx(2.0)  # 30 vs 32: only the mirror is wrong
    m = localization_metrics([match_clip(sc, [SourceEstimate(140.0)])])
    assert m["front_back_confusion"] == 0.0


def test_models_without_classes_or_distance_give_null():
    m = localization_metrics([match_clip(scene(("dog", 0.0, 0.0, 2.0)), [SourceEstimate(5.0)])])
    assert m["class_accuracy"] is None and m["distance_mae_m"] is None
    assert "n_sources=1" in m["by_condition"] and "head=kemar-mit" in m["by_condition"]


def test_each_clip_counts_once_per_condition():
    from agent.core.scene import Scene, SourceLabel
    from training.eval.metrics import localization_metrics, match_clip

    scenes = [Scene(f"s{i}", "a.wav", 48_000, 5.0, [SourceLabel("dog", 30.0, 0.0, 2.0, 0.0, 5.0)], None, "kemar-mit")
              for i in range(3)]
    m = localization_metrics([match_clip(s, []) for s in scenes])
    assert m["by_condition"]["n_sources=1,head=kemar-mit"]["n_sources"] == 3


def test_by_class_follows_each_true_source():
    """Errors land on the true class of the source they were made on; a missed source lowers
    only its own class's recall."""
    a = scene(("dog", 30.0, 0.0, 2.0), ("alarm", -90.0, 0.0, 3.0))
    b = scene(("alarm", 150.0, 0.0, 2.0))
    m = localization_metrics([match_clip(a, [SourceEstimate(40.0, 0.0, 2.0, "dog")]),
                              match_clip(b, [SourceEstimate(30.0, 0.0, 2.0, "alarm")])])
    dog, alarm = m["by_class"]["dog"], m["by_class"]["alarm"]
    assert dog["n_sources"] == 1 and dog["recall"] == 1.0 and dog["angular_error_mean_deg"] == pytest.approx(10.0)
    assert alarm["n_sources"] == 2 and alarm["recall"] == 0.5
    assert alarm["front_back_confusion"] == 1.0 and alarm["class_accuracy"] == 1.0


def test_single_source_condition_is_split_by_room():
    """Each clip lands in its own (sources, room, head) cell and in the pooled one."""
    dry = scene(("dog", 30.0, 0.0, 2.0))
    wet = scene(("dog", 30.0, 0.0, 2.0), room={"rt60_s": 0.5})
    m = localization_metrics([match_clip(dry, [SourceEstimate(40.0)]), match_clip(wet, [SourceEstimate(50.0)])])
    bc = m["by_condition"]
    assert bc["n_sources=1,room=anechoic,head=kemar-mit"]["angular_error_mean_deg"] == pytest.approx(10.0)
    assert bc["n_sources=1,room=reverberant,head=kemar-mit"]["angular_error_mean_deg"] == pytest.approx(20.0)
    assert bc["n_sources=1,head=kemar-mit"]["n_sources"] == 2


def test_floor_score_measures_each_floor_in_its_own_units():
    from training.eval.metrics import floor_score, floor_terms

    one = scene(("dog", 30.0, 0.0, 2.0))
    two = scene(("dog", 30.0, 0.0, 2.0), ("siren", -90.0, 0.0, 3.0))
    exact = [match_clip(one, [SourceEstimate(30.0, 0.0, 2.0, "dog")]),
             match_clip(two, [SourceEstimate(30.0, 0.0, 2.0, "dog"), SourceEstimate(-90.0, 0.0, 3.0, "siren")])]
    assert floor_score(localization_metrics(exact)) == 0.0
    # one source 10 deg off (the floor), 0.6 m too far (a distance error: 1/0.3 of the floor), the
    # wrong class (1/0.1); the 2-3 source clip 25 deg off on both sources (its floor)
    off = [match_clip(one, [SourceEstimate(40.0, 0.0, 2.6, "siren")]),
           match_clip(two, [SourceEstimate(55.0, 0.0, 2.0, "dog"), SourceEstimate(-115.0, 0.0, 3.0, "siren")])]
    t = floor_terms(localization_metrics(off))
    assert t["n_sources=1,head=kemar-mit:angular_error_mean_deg"] == pytest.approx(1.0)
    assert t["n_sources=1,head=kemar-mit:front_back_confusion"] == 0.0
    assert t["n_sources=1,head=kemar-mit:distance_er05"] == pytest.approx(1 / 0.3)
    assert t["n_sources=1,head=kemar-mit:class_error"] == pytest.approx(1 / 0.1)
    assert t["n_sources=2-3,head=kemar-mit:angular_error_mean_deg"] == pytest.approx(1.0)
    assert floor_score(localization_metrics(off)) == pytest.approx((1 + 0 + 1 / 0.3 + 10 + 1) / 5)
    # a localizer without classes or distance gets no score rather than one on fewer floors
    assert floor_score(localization_metrics([match_clip(one, [SourceEstimate(40.0)])])) is None
    # clips of another head measure no floor
    other = [match_clip(scene(("dog", 30.0, 0.0, 2.0), head="sphere"), [SourceEstimate(30.0)])]
    assert floor_score(localization_metrics(other)) is None


def test_floor_intervals_bracket_the_metric_and_narrow_with_more_clips():
    """The clip bootstrap's interval holds the point metric; identical clips leave no spread;
    four times the clips roughly halve the interval (1/sqrt(n)); a model without distance has
    no distance interval."""
    from training.eval.metrics import floor_intervals

    rng = np.random.default_rng(1)

    def clips(n):
        out = []
        for _ in range(n):
            err = float(rng.uniform(0.0, 40.0))
            out.append(match_clip(scene(("dog", 0.0, 0.0, 2.0)),
                                  [SourceEstimate(err, 0.0, 2.0 + float(rng.uniform(0, 1.0)), "dog")]))
        return out

    key = "n_sources=1,head=kemar-mit:angular_error_mean_deg"
    few, many = clips(50), clips(200)
    for res in (few, many):
        lo, hi = floor_intervals(res)[key]
        assert lo < localization_metrics(res)["by_condition"]["n_sources=1,head=kemar-mit"]["angular_error_mean_deg"] < hi
    width = [floor_intervals(r)[key][1] - floor_intervals(r)[key][0] for r in (few, many)]
    assert 0.35 < width[1] / width[0] < 0.7
    der = floor_intervals(few)["n_sources=1,head=kemar-mit:distance_er05"]
    assert 0.0 <= der[0] <= der[1] <= 1.0
    same = [match_clip(scene(("dog", 0.0, 0.0, 2.0)), [SourceEstimate(10.0, 0.0, 2.0, "dog")])] * 30
    assert floor_intervals(same)[key] == pytest.approx([10.0, 10.0])
    no_dist = floor_intervals([match_clip(scene(("dog", 0.0, 0.0, 2.0)), [SourceEstimate(10.0)])])
    assert no_dist["n_sources=1,head=kemar-mit:distance_er05"] is None
    assert no_dist["n_sources=2-3,head=kemar-mit:angular_error_mean_deg"] is None  # no such clips
    with pytest.raises(ValueError, match="n_boot"):
        floor_intervals(few, n_boot=0)


def test_paired_floor_difference_separates_a_steady_gain_that_separate_intervals_do_not():
    """Two models on the same clips, the second 2 deg worse on every clip while the clips spread
    over 0-40 deg: each model's own interval is far wider than 2 deg and the two overlap, the
    paired difference is -2 deg with (almost) no spread. Results of other clips are refused."""
    from training.eval.metrics import floor_intervals

    rng = np.random.default_rng(2)
    scenes = [Scene(f"s{i}", "a.wav", 48000, 5.0, [SourceLabel("dog", 0.0, 0.0, 2.0, 0.0, 1.0)], None, "kemar-mit")
              for i in range(80)]
    errs = rng.uniform(0.0, 40.0, len(scenes))
    a = [match_clip(sc, [SourceEstimate(float(e), 0.0, 2.0, "dog")]) for sc, e in zip(scenes, errs)]
    b = [match_clip(sc, [SourceEstimate(float(e) + 2.0, 0.0, 2.0, "dog")]) for sc, e in zip(scenes, errs)]
    key = "n_sources=1,head=kemar-mit:angular_error_mean_deg"
    ia, ib = floor_intervals(a)[key], floor_intervals(b)[key]
    assert ia[1] > ib[0]  # the separate intervals overlap
    lo, hi = floor_intervals(a, minus=b)[key]
    assert lo == pytest.approx(-2.0, abs=1e-6) and hi == pytest.approx(-2.0, abs=1e-6)
    with pytest.raises(ValueError, match="same clips"):
        floor_intervals(a, minus=b[1:])


def test_bootstrap_ratio_parts_reproduce_each_floor_metric():
    """floor_intervals resamples per-clip numerators and denominators instead of calling
    `aggregate` 2,000 times; over all clips at once they must give exactly the metric that
    `floor_terms` reads (misses, wrong classes, unlabelled and distance-less estimates included)."""
    from training.eval.metrics import FLOORS, _by_condition, _ratio_parts, floor_terms

    one, two = scene(("dog", 30.0, 0.0, 2.0)), scene(("dog", 30.0, 0.0, 2.0), ("siren", -90.0, 0.0, 3.0))
    res = [match_clip(one, [SourceEstimate(150.0, 0.0, 2.9, "dog")]),
           match_clip(one, [SourceEstimate(35.0, 5.0, 2.1, "siren")]),
           match_clip(one, [SourceEstimate(20.0, 0.0, None, "dog")]),
           match_clip(one, []),
           match_clip(two, [SourceEstimate(40.0, 0.0, 1.0, "dog"), SourceEstimate(-60.0, 10.0, 3.2, "siren")]),
           match_clip(two, [SourceEstimate(-100.0, 0.0, 3.0, None)])]
    terms, groups = floor_terms(localization_metrics(res)), _by_condition(res)
    for cond, key, floor, _ in FLOORS:
        num, den = _ratio_parts(groups[cond], key)
        assert num.sum() / den.sum() == pytest.approx(terms[f"{cond}:{key}"] * floor)


def test_floor_score_interval_holds_the_score_and_pairs_a_steady_gain():
    """The floor score's bootstrap interval holds the point score; identical clips give none;
    a second model exactly 2 deg worse on every one-source clip (the only angular floor term
    measured, over 10 deg, in the mean of the four one-source terms) differs by 2 / 10 / 4 =
    0.05 in score with no spread, though the two separate intervals overlap; a model without
    distance has no score and so no interval; other clips are refused."""
    from training.eval.metrics import floor_score, floor_score_interval

    rng = np.random.default_rng(3)
    errs, dists = rng.uniform(0.0, 40.0, 80), rng.uniform(1.5, 2.5, 80)
    a = [match_clip(scene(("dog", 0.0, 0.0, 2.0)), [SourceEstimate(float(e), 0.0, float(d), "dog")])
         for e, d in zip(errs, dists)]
    b = [match_clip(scene(("dog", 0.0, 0.0, 2.0)), [SourceEstimate(float(e) + 2.0, 0.0, float(d), "dog")])
         for e, d in zip(errs, dists)]
    sa, sb = (floor_score(localization_metrics(r)) for r in (a, b))
    ia, ib = floor_score_interval(a), floor_score_interval(b)
    assert ia[0] < sa < ia[1] and ib[0] < sb < ib[1] and ib[0] < ia[1]
    assert sa - sb == pytest.approx(-0.05)
    assert floor_score_interval(a, minus=b) == pytest.approx([-0.05, -0.05])
    same = [a[0]] * 20
    lo, hi = floor_score_interval(same)
    assert lo == pytest.approx(hi) == pytest.approx(floor_score(localization_metrics(same)))
    assert floor_score_interval([match_clip(scene(("dog", 0.0, 0.0, 2.0)), [SourceEstimate(10.0)])]) is None
    with pytest.raises(ValueError, match="same clips"):
        floor_score_interval(a, minus=b[:-1])


def test_pooled_detection_f1_equals_the_f1_of_summed_clip_counts():
    """detection_f1 pools TP, FP and FN over clips (never a mean of per-clip F1s); the per-clip
    counts, and the per-clip parts a clip bootstrap resamples (`_ratio_parts`), give back
    exactly the pooled value of each detection key in every condition."""
    # by hand: clip 1 two hits (TP 2); clip 2 the wrong class (FP 1, FN 1); clip 3 nothing
    # heard (FN 1): 2 * 2 / (2 * 2 + 1 + 2) = 4/7, where the mean of per-clip F1s is 1/3
    a = scene(("dog", 30.0, 0.0, 2.0), ("siren", -90.0, 0.0, 3.0))
    b = scene(("dog", 30.0, 0.0, 2.0))
    hand = [match_clip(a, [SourceEstimate(35.0, 0.0, None, "dog"), SourceEstimate(-80.0, 0.0, None, "siren")]),
            match_clip(b, [SourceEstimate(30.0, 0.0, None, "siren")]), match_clip(b, [])]
    assert localization_metrics(hand)["detection_f1"] == pytest.approx(4 / 7)
    assert [r.detection_counts("detection_f1") for r in hand] == [(2, 0, 0), (0, 1, 1), (0, 0, 1)]
    from training.eval.metrics import DETECTION_KEYS, _by_condition, _ratio_parts

    rng = np.random.default_rng(5)
    labels = ("dog", "siren", "alarm")
    res = []
    for i in range(60):
        n = int(rng.integers(1, 4))
        truth = [(labels[k], float(rng.uniform(-180, 180)), float(rng.uniform(-40, 60)), 2.0)
                 for k in rng.permutation(3)[:n]]
        preds = [SourceEstimate(az + float(rng.normal(0, 25)), el, None, str(rng.choice(labels)))
                 for _, az, el, _ in truth if rng.random() < 0.85]
        preds += [SourceEstimate(float(rng.uniform(-180, 180)), 0.0, None, "dog")] * int(rng.random() < 0.2)
        res.append(match_clip(scene(*truth, room={"rt60_s": 0.4} if i % 2 else None), preds))
    m = localization_metrics(res)
    groups = {"all": res, **_by_condition(res)}
    for cond, clips in groups.items():
        mm = m if cond == "all" else m["by_condition"][cond]
        for key in DETECTION_KEYS:
            tp, fp, fn = np.sum([r.detection_counts(key) for r in clips], axis=0)
            num, den = _ratio_parts(clips, key)
            assert mm[key] == pytest.approx(2 * tp / (2 * tp + fp + fn)) == pytest.approx(num.sum() / den.sum())
    assert 0.0 < m["detection_f1"] < m["detection_f1_20deg_any_class"] < m["detection_f1_unlocated"] < 1.0
