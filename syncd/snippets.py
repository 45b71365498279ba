"""Search result highlighting: `<mark>` around the query's words in a title, and a snippet
of a note's body, at most two fragments of 24 words around the first hits. Both come out
HTML-escaped, so they are safe to render as HTML.

PostgreSQL's `ts_headline` did this, but it runs the full text parser over its input and
cost ~90 µs a result even on a short excerpt: 20 results were most of a search's time.
Here a word is what the query parser (syncd/search.py) takes as one, a run of letters
and digits, and it is a hit when it equals a query word, or starts with the query's
last word while the user is still typing it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 24
MAX_FRAGMENTS = 2
CONTEXT_BEFORE = MAX_WORDS // 3  # words shown before a fragment's first hit
DELIMITER = " … "


class Terms:
    """The query's words, (lowercase word, matches as a prefix), each a regular expression
    that finds its hits in one pass in C. One pattern per word: a literal first lets the
    engine skip ahead to it, which an alternation of words would not. They run on the
    lowercased text: case-insensitive matching would cost that skip (5× slower)."""

    def __init__(self, terms: Sequence[tuple[str, bool]]) -> None:
        # The words hold only letters and digits (WORD), so nothing needs escaping. The
        # look-behind after the word is the word boundary before it.
        self._sources = [rf"{w}(?<=(?<![^\W_]){w})" + (r"[^\W_]*" if prefix else r"(?![^\W_])")
                         for w, prefix in dict(terms).items()]
        self.patterns = [re.compile(p) for p in self._sources]
        self._folding: list[re.Pattern[str]] | None = None

    def hits(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        """The spans of hits in text[start:end], in order, without overlaps."""
        lowered = text.lower()
        if len(lowered) == len(text):
            spans = sorted(m.span() for p in self.patterns
                           for m in p.finditer(lowered, start, end))
        else:  # a character whose lowercase is longer (İ): offsets would shift
            if self._folding is None:
                self._folding = [re.compile(p, re.I) for p in self._sources]
            spans = sorted(m.span() for p in self._folding for m in p.finditer(text, start, end))
        kept: list[tuple[int, int]] = []
        for span in spans:
            if not kept or span[0] >= kept[-1][1]:
                kept.append(span)
        return kept


def highlight(text: str, terms: Terms) -> str:
    """All of text, with every hit marked."""
    return _marked(text, 0, len(text), terms.hits(text, 0, len(text)))


# Runs of words, found by the regular expression engine rather than word by word: the
# next MAX_WORDS words from a word's start; CONTEXT_BEFORE words back, on reversed text.
_AHEAD = re.compile(rf"[^\W_]+(?:[\W_]+[^\W_]+){{0,{MAX_WORDS - 1}}}")
_BACK = re.compile(rf"(?:[\W_]*[^\W_]+){{0,{CONTEXT_BEFORE}}}")


def snippet(excerpt: str, cut_start: bool, cut_end: bool, terms: Terms) -> str:
    """Up to MAX_FRAGMENTS fragments of excerpt around its first hits (its opening words
    when it has none). cut_start / cut_end: the excerpt was cut from a longer text there,
    so a word touching that end may be a piece of one and is left out."""
    begin, end = 0, len(excerpt)
    if cut_start and (cut := WORD.match(excerpt)):
        begin = cut.end()
    if cut_end and (cut := WORD.match(excerpt[:begin - 1:-1] if begin else excerpt[::-1])):
        end -= cut.end()
    hits = terms.hits(excerpt, begin, end)
    fragments: list[tuple[int, int]] = []
    for start, _ in hits:
        if fragments and start < fragments[-1][1]:
            continue  # inside the previous fragment
        if len(fragments) == MAX_FRAGMENTS:
            break
        floor = fragments[-1][1] if fragments else begin
        back = _BACK.match(excerpt[floor:start][::-1])
        fragments.append(_ahead(excerpt, start - (back.end() if back else 0), end))
    if not fragments and (first := WORD.search(excerpt, begin, end)):
        fragments.append(_ahead(excerpt, first.start(), end))
    return DELIMITER.join(_marked(excerpt, a, b, hits) for a, b in fragments)


def _ahead(text: str, start: int, end: int) -> tuple[int, int]:
    """From the word at start to the end of the MAX_WORDS-th word (or of the last one)."""
    m = _AHEAD.match(text, start, end)
    return (start, m.end()) if m else (start, start)


def _marked(text: str, start: int, end: int, hits: list[tuple[int, int]]) -> str:
    out, pos = [], start
    for a, b in hits:
        if a >= start and b <= end:
            out += [escape(text[pos:a], quote=False), "<mark>", escape(text[a:b], quote=False),
                    "</mark>"]
            pos = b
    out.append(escape(text[pos:end], quote=False))
    return "".join(out)
