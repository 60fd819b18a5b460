"""Text → search terms, written once for what is stored and what is asked.

Chinese (and Japanese kana, Korean hangul) has no spaces, and most Chinese
words are two characters. SQLite FTS5's trigram tokenizer cannot find a
two-character word, a pg_trgm index cannot help a two-character pattern, and
both databases' word tokenizers take a whole run of Han characters as one
"word". So each such run is stored as its overlapping character bigrams
(智谱清言 → 智谱 谱清 清言) and a query run becomes the phrase of its bigrams:
"智谱" is found inside any longer sentence, on both databases, through their
ordinary word index.

Why bigrams rather than a segmenter (jieba): a segmenter's dictionary
decides what a word is, so a name it splits differently from the query
(a product, a new model name) is not found; bigrams find every substring of
two or more characters, need no dependency or dictionary load (jieba's takes
~1 s and ~50 MB per process), and cost one extra token per character.
One-character queries match bigrams that start with the character.

Other text is lowercased and split into runs of letters and digits, so that
the stored column is plain space-separated tokens that FTS5's unicode61 and
PostgreSQL's 'simple' configuration both split the same way.
"""

from __future__ import annotations

import re

# Han (with extension A and compatibility ideographs), kana, hangul.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+")
_CJK_RUN = re.compile(rf"[{_CJK}]+")


def _pieces(text: str) -> list[tuple[bool, str]]:
    """(is a CJK run, token) in order."""
    return [(bool(_CJK_RUN.fullmatch(t)), t) for t in _TOKEN.findall(text.lower())]


def bigrams(run: str) -> list[str]:
    return [run] if len(run) < 2 else [run[i:i + 2] for i in range(len(run) - 1)]


def index_text(text: str) -> str:
    """What the search column stores for `text`."""
    out: list[str] = []
    for is_cjk, token in _pieces(text):
        out.extend(bigrams(token) if is_cjk else [token])
    return " ".join(out)


def query_groups(query: str) -> list[tuple[list[str], bool]]:
    """The query as groups that must all match: each group a phrase of adjacent
    tokens (a CJK run's bigrams, or one word), and whether it is a prefix
    (a lone CJK character, or the last word typed)."""
    pieces = _pieces(query)
    groups: list[tuple[list[str], bool]] = []
    for n, (is_cjk, token) in enumerate(pieces):
        if is_cjk:
            groups.append((bigrams(token), len(token) == 1))
        else:
            groups.append(([token], n == len(pieces) - 1))
    return groups


def highlight_words(query: str) -> list[str]:
    """The words to mark in a snippet, longest first (as typed, lowercased)."""
    words = {token for _, token in _pieces(query)}
    return sorted(words, key=len, reverse=True)
