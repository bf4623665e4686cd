"""Keyword matching for the complexity heuristic: whole words and phrases, never substrings.

The original system matched keywords as substrings, so "information" counted as
"format" and "prelinted" as "lint". Here a keyword matches only as a whole word (or a
whole phrase), case-insensitively, with these deliberate widenings:

- **Regular inflections of every word**: -s, -es, -d, -ed, -ing, -er, -ers, -en, also after
  dropping a final "e" (migrate -> migrating) and doubling a final consonant
  (format -> formatted, rewrite -> rewritten). So "refactoring", "renamed", "typos" and
  "linter" match. The generator over-produces a few non-words ("lintten"); that is
  harmless because they never occur in real text.
- **Derivations do not match**: "architecture" is not "architect", "reformat" is not
  "format", "securely" is not "security". They name a topic, not the kind of work.
- **Phrases** ("fix typo") allow any whitespace or a hyphen between their words and one
  article or possessive in between ("fix the typo", "update our README", "version-bump").
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

__all__ = ["KeywordMatcher", "matcher_for"]

_SUFFIXES = ("", "s", "es", "d", "ed", "ing", "er", "ers", "en")
_DOUBLING_SUFFIXES = ("ed", "ing", "er", "ers", "en")
_FILLERS = ("the", "a", "an", "this", "that", "these", "those", "its", "our", "my", "your", "their", "some")
_VOWELS = set("aeiou")


def _word_forms(word: str) -> set[str]:
    """The word and its regular inflections (see the module docstring)."""
    stems = {word}
    if word.endswith("e") and len(word) > 2:
        stems.add(word[:-1])
    if word.endswith("y") and len(word) > 2 and word[-2] not in _VOWELS:
        stems.add(word[:-1] + "i")  # security -> securities
    forms = {stem + suffix for stem in stems for suffix in _SUFFIXES}
    for stem in stems:
        last = stem[-1]
        if last.isalpha() and last not in _VOWELS and last not in "wxy":
            forms.update(stem + last + suffix for suffix in _DOUBLING_SUFFIXES)
    return forms


def _pattern(keyword: str) -> str:
    words = keyword.lower().split()
    if not words:
        raise ValueError("a keyword must not be empty")
    filler = "(?:" + "|".join(_FILLERS) + ")"
    gap = rf"(?:[\s-]+{filler})?[\s-]+"
    parts = []
    for word in words:
        forms = sorted(_word_forms(word), key=len, reverse=True)  # longest first: no partial alternation wins
        parts.append("(?:" + "|".join(re.escape(form) for form in forms) + ")")
    return r"(?<!\w)" + gap.join(parts) + r"(?!\w)"


class KeywordMatcher:
    """Finds the first of a list of keywords (or phrases) in a text, as whole words."""

    def __init__(self, keywords: Iterable[str]) -> None:
        self.keywords: tuple[str, ...] = tuple(k.strip() for k in keywords if k and k.strip())
        self._patterns = [(k, re.compile(_pattern(k), re.IGNORECASE)) for k in self.keywords]

    def find(self, text: str) -> str | None:
        """The first configured keyword present in ``text``, or None."""
        for keyword, pattern in self._patterns:
            if pattern.search(text):
                return keyword
        return None

    def matches(self, text: str) -> bool:
        return self.find(text) is not None


@lru_cache(maxsize=32)
def matcher_for(keywords: tuple[str, ...]) -> KeywordMatcher:
    """A compiled matcher, cached per keyword list (settings rarely change)."""
    return KeywordMatcher(keywords)
