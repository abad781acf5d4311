"""The sound-word table's builder, on a WordNet of a few synsets written in WordNet's own format."""

import pytest

from agent.core.errors import BinauraError
from agent.core.labels import LABELS
from agent.qa.resolve import SoundWords
from export.sound_words import build_table, seeds, template_words
from export.wordnet import WordNet
from training.qa.augment import name_words, same_stem
from training.qa.phrasing import name_pools

# (key, lexfile, lemmas, pointers [(symbol, key)], gloss); keys become byte offsets
NOUNS = [
    ("water", 27, ["water", "H2O"], [], "binary compound that occurs at room temperature as a clear liquid"),
    ("liquid", 27, ["liquid"], [], "a substance in the fluid state of matter"),
    ("faucet", 6, ["faucet", "spigot"], [("@", "regulator")], "a regulator for controlling the flow of a liquid"),
    ("regulator", 6, ["regulator"], [], "a control that maintains a steady speed"),
    ("atmosphere", 19, ["air"], [], "a mixture of gases surrounding the earth"),  # air's first sense
    ("tune", 10, ["tune", "melody", "air"], [("@", "music")], "a succession of notes forming a distinctive sequence"),
    ("music", 10, ["music"], [], "an artistic form of auditory communication"),
    ("sudan", 15, ["Sudan"], [], "a republic in northeastern Africa where a liquid flows"),
    ("catherine", 18, ["Catherine"], [], "a queen who loved music"),
]


def _write_wordnet(folder):
    """data.noun with each synset at its byte offset, index.noun listing each lemma's senses."""
    folder.mkdir()
    head = "  1 This is a fake WordNet header line\n"
    offsets, lines, pos = {}, [], len(head)
    # offsets are 8 digits wide, so a line's length does not depend on them: one pass sizes them
    for key, lexfile, lemmas, ptrs, gloss in NOUNS:
        offsets[key] = pos
        pos += len(_line(0, lexfile, lemmas, [(s, 0) for s, _ in ptrs], gloss)) + 1
    for key, lexfile, lemmas, ptrs, gloss in NOUNS:
        lines.append(_line(offsets[key], lexfile, lemmas, [(s, offsets[k]) for s, k in ptrs], gloss))
    (folder / "data.noun").write_text(head + "\n".join(lines) + "\n", encoding="latin-1")
    senses = {}
    for key, _, lemmas, _, _ in NOUNS:
        for lem in lemmas:
            senses.setdefault(lem.lower(), []).append(offsets[key])
    idx = [head.rstrip("\n")] + [f"{lem} n {len(offs)} 0 {len(offs)} 0 " + " ".join(f"{o:08d}" for o in offs)
                                 for lem, offs in sorted(senses.items())]
    (folder / "index.noun").write_text("\n".join(idx) + "\n", encoding="latin-1")
    (folder / "data.verb").write_text(head, encoding="latin-1")
    (folder / "index.verb").write_text(head, encoding="latin-1")
    (folder / "noun.exc").write_text("spigots spigot\n", encoding="latin-1")


def _line(offset, lexfile, lemmas, ptrs, gloss):
    words = " ".join(f"{w} 0" for w in lemmas)
    p = " ".join(f"{s} {o:08d} n 0000" for s, o in ptrs)
    return f"{offset:08d} {lexfile:02d} n {len(lemmas):02x} {words} {len(ptrs):03d} {p} | {gloss}".replace("  ", " ")


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wn") / "dict"
    _write_wordnet(folder)
    return WordNet(folder)


def test_the_reader_finds_synsets_at_their_byte_offsets(wordnet):
    faucet = wordnet.senses("faucet", "noun")[0]
    assert faucet.lemmas == ("faucet", "spigot") and faucet.lexfile == 6
    assert "flow of a liquid" in faucet.gloss
    assert wordnet.synset(*faucet.related[0]).lemmas == ("regulator",)
    assert wordnet.senses("sudan", "noun")[0].proper == (True,)


def test_words_are_resolved_through_glosses_synonyms_and_hypernyms(wordnet):
    table = build_table(wordnet, progress=False)
    words = SoundWords(table)
    assert words.class_of("faucet") == "water"  # its gloss: "flow of a liquid"
    assert words.class_of("spigots") == "water"  # a synonym, in a form the exceptions list
    assert words.class_of("tune") == "music"  # its hypernym is music
    assert words.class_of("melody") == "music"
    # a proper name and a place never name a sound, whatever their glosses say
    assert words.class_of("sudan") is None and words.class_of("catherine") is None
    # the words of the question templates are never keys
    assert not set(table["words"]) & (template_words() - set(seeds(wordnet)))
    # and the table lists them, for the runtime's mend
    assert table["template_words"] == sorted(template_words())


def test_no_seed_shares_a_stem_with_a_held_out_word(wordnet):
    """The words that only the benchmark's held-out names hold ("faucet", "tune", "ding-dong":
    issue 20's held-out wording) are not among the words the table starts from, so how well it
    names them is what WordNet carries. (A held-out name may share a word with a seen one:
    "the barking dog" beside "that dog".)"""
    seen = {w for label in LABELS for n in name_pools(label)[0] for w in name_words(n)}
    novel = {w for label in LABELS for n in name_pools(label)[1] for w in name_words(n)} - seen
    assert {"faucet", "tune", "ventilation"} <= novel
    for w in seeds(wordnet):
        assert not any(same_stem(w, h) for h in novel), w
    assert set(c for cls in seeds(wordnet).values() for c in cls) <= set(LABELS)


def test_a_folder_without_wordnet_is_refused(tmp_path):
    with pytest.raises(BinauraError, match="not a WordNet 3.0 database folder"):
        WordNet(tmp_path)


def test_a_word_of_two_close_readings_is_listed_apart(wordnet):
    """A word the ratio rule keeps out of the table (its two best classes too close) is listed
    with its close readings, for the runtime to settle by what it hears; a key never is."""
    table = build_table(wordnet, progress=False)
    assert table["ambiguous"] and not set(table["ambiguous"]) & set(table["words"])
    for w, readings in table["ambiguous"].items():
        assert len(readings) >= 2 and set(readings) <= set(LABELS), w
    assert SoundWords(table).ambiguous == {w: tuple(r) for w, r in table["ambiguous"].items()}
