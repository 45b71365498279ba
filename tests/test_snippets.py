"""Search highlighting (syncd/snippets.py): marks, escaping, fragments, cut words."""

from __future__ import annotations

from syncd.snippets import DELIMITER, MAX_WORDS, Terms, highlight, snippet

PINE = Terms([("pineapple", False)])


def test_highlight_marks_every_hit_and_escapes_the_rest() -> None:
    assert highlight("Pineapple & <b>pineapple</b>", PINE) == (
        "<mark>Pineapple</mark> &amp; &lt;b&gt;<mark>pineapple</mark>&lt;/b&gt;")
    # Whole words only, unless the word is the prefix being typed.
    assert highlight("pineapples", PINE) == "pineapples"
    assert highlight("pineapples", Terms([("pine", True)])) == "<mark>pineapples</mark>"
    assert highlight("Ünïcode wörds", Terms([("wörds", False)])) == "Ünïcode <mark>wörds</mark>"
    # Hits are found in the lowercased text; where lowercasing lengthens a character (İ is
    # two in lowercase) the offsets still fall on the original text's words.
    assert highlight("İzmir PINEAPPLE İ pineapple", PINE) == (
        "İzmir <mark>PINEAPPLE</mark> İ <mark>pineapple</mark>")
    assert highlight("Wörds İ WÖRDS", Terms([("wör", True)])) == (
        "<mark>Wörds</mark> İ <mark>WÖRDS</mark>")


def test_snippet_is_at_most_two_fragments_of_max_words_around_the_hits() -> None:
    words = [f"w{i}" for i in range(200)]
    words[50] = words[150] = "pineapple"
    text = " ".join(words)
    out = snippet(text, False, False, PINE)
    first, second = out.split(DELIMITER)
    for fragment in (first, second):
        assert fragment.count("<mark>pineapple</mark>") == 1
        assert len(fragment.split()) == MAX_WORDS
    assert first.startswith("w42 ") and second.startswith("w142 ")
    # Hits close together share one fragment.
    words[55] = "pineapple"
    assert snippet(" ".join(words[:100]), False, False, PINE).count(DELIMITER) == 0


def test_snippet_without_a_hit_opens_the_text_and_drops_cut_words() -> None:
    text = "ng the sea, and then the mountains were blue again at dusk"
    assert snippet(text, False, False, PINE).startswith("ng the sea")
    out = snippet(text, True, True, PINE)
    assert out.startswith("the sea") and out.endswith("again at")
    assert snippet("", True, True, PINE) == ""
