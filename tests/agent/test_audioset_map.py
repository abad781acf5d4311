"""The AudioSet -> binaura label table: every label covered, no class counted twice, a label's
score is its strongest class, and every name exists in the fetched class map."""

import numpy as np
import pytest

from agent.core.audioset import AUDIOSET_TO_LABEL, AudiosetMap, read_class_map
from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.core.yamnet_features import CLASS_MAP_FILE, default_yamnet_dir

CLASS_MAP = default_yamnet_dir() / CLASS_MAP_FILE


def _names():
    """A stand-in class map: the table's names first, then fillers, 521 in all."""
    listed = [n for names in AUDIOSET_TO_LABEL.values() for n in names]
    return tuple(listed + [f"other {i}" for i in range(521 - len(listed))])


def test_every_label_has_classes_and_no_class_counts_twice():
    assert tuple(AUDIOSET_TO_LABEL) == LABELS
    listed = [n for names in AUDIOSET_TO_LABEL.values() for n in names]
    assert all(AUDIOSET_TO_LABEL[k] for k in LABELS)
    assert len(listed) == len(set(listed))


def test_a_label_scores_its_strongest_class():
    names = _names()
    amap = AudiosetMap.build(names)
    s = np.zeros((2, 521), np.float32)
    s[0, names.index("Bark")] = 0.9
    s[0, names.index("Dog")] = 0.6
    s[1, names.index("Typing")] = 0.4
    s[1, names.index("other 3")] = 1.0  # an unmapped class counts for nothing
    out = amap.label_scores(s)
    assert out.shape == (2, len(LABELS))
    assert out[0, LABELS.index("dog")] == pytest.approx(0.9) and out[0].sum() == pytest.approx(0.9)
    assert out[1, LABELS.index("keyboard")] == pytest.approx(0.4) and out[1].sum() == pytest.approx(0.4)
    assert amap.top_classes(s[0], 2) == [("Bark", pytest.approx(0.9)), ("Dog", pytest.approx(0.6))]
    with pytest.raises(BinauraError, match="521 AudioSet scores"):
        amap.label_scores(np.zeros((2, 520)))


def test_a_name_missing_from_the_class_map_is_named():
    names = tuple(n if n != "Doorbell" else "Door bell" for n in _names())
    with pytest.raises(BinauraError, match="Doorbell"):
        AudiosetMap.build(names)


def test_a_malformed_class_map_is_refused(tmp_path):
    bad = tmp_path / "map.csv"
    bad.write_text("i,name\n0,Speech\n")
    with pytest.raises(BinauraError, match="index,mid,display_name"):
        read_class_map(bad)


@pytest.mark.skipif(not CLASS_MAP.is_file(),
                    reason=f"YAMNet not fetched ({CLASS_MAP}); run `python -m training.models.yamnet_setup --ensure`")
def test_every_name_is_in_the_fetched_class_map():
    names = read_class_map(CLASS_MAP)
    assert names[0] == "Speech" and names[132] == "Music" and len(names) == 521
    amap = AudiosetMap.build(names)
    assert amap.indices[LABELS.index("speech")][0] == 0
