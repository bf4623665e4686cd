"""Complexity enrichment at submit: explicit tier or a heuristic, always both recorded.

The heuristic reads four signals: the word count of the description (whitespace
split), the number of file hints, the number of verification steps, and whether a
complex or trivial keyword occurs (``agentcom.routing.keywords``: whole words, not
substrings). Each size signal votes:

============  =========  ==========  ========
signal        trivial    standard    complex
============  =========  ==========  ========
words         < 10       10..50      > 50
files         0          1..3        >= 4
steps         0          1..3        >= 4
============  =========  ==========  ========

Rules, first match wins:

1. No words, files or steps at all -> ``unknown``, confidence 0 (undecided; routes as standard).
2. A complex keyword and no trivial one -> ``complex``, 0.7 + 0.1 per size vote for complex.
3. A trivial keyword, no complex one and no size vote for complex -> ``trivial``,
   0.6 + 0.1 per size vote for trivial.
4. Otherwise the size votes decide: majority, a three-way tie is ``standard``.
   ``trivial`` needs keyword evidence (rule 3), so a trivial majority becomes ``standard``
   with confidence 0.5 x (share of trivial and standard votes): "small, but we cannot
   say it is mechanical". Both keywords at once cancel out and leave it to the votes.

So a decided tier never has confidence 0 (the original scored demoted tasks 0.0).
Confidence is rounded to two decimals so it reads the same in JSON and in reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Sized

from agentcom.config import DEFAULT_COMPLEX_KEYWORDS, DEFAULT_TRIVIAL_KEYWORDS
from agentcom.errors import ValidationFailed
from agentcom.protocol.messages import (
    TIERS,
    Complexity,
    ComplexitySignals,
    InferredComplexity,
    KeywordSignals,
)
from agentcom.routing.keywords import matcher_for

__all__ = ["Classifier", "classify", "explain"]

WORDS_TRIVIAL_BELOW = 10
WORDS_COMPLEX_ABOVE = 50
COUNT_COMPLEX_FROM = 4


def _vote_words(words: int) -> str:
    if words < WORDS_TRIVIAL_BELOW:
        return "trivial"
    return "complex" if words > WORDS_COMPLEX_ABOVE else "standard"


def _vote_count(count: int) -> str:
    if count == 0:
        return "trivial"
    return "complex" if count >= COUNT_COMPLEX_FROM else "standard"


def _infer(words: int, files: int, steps: int, complex_kw: bool, trivial_kw: bool) -> tuple[str, float]:
    if words == 0 and files == 0 and steps == 0:
        return "unknown", 0.0
    votes = [_vote_words(words), _vote_count(files), _vote_count(steps)]
    n_trivial, n_standard, n_complex = (votes.count(t) for t in ("trivial", "standard", "complex"))
    if complex_kw and not trivial_kw:
        return "complex", min(1.0, 0.7 + 0.1 * n_complex)
    if trivial_kw and not complex_kw and n_complex == 0:
        return "trivial", 0.6 + 0.1 * n_trivial
    if n_complex >= 2:
        return "complex", n_complex / 3
    if n_standard >= 2 or (n_trivial, n_standard, n_complex) == (1, 1, 1):
        return "standard", n_standard / 3
    # a trivial majority without keyword evidence (or with a conflicting keyword)
    return "standard", 0.5 * (n_trivial + n_standard) / 3


@dataclass(frozen=True)
class Classifier:
    """The heuristic with its keyword lists; build once from settings, call per task."""

    complex_keywords: tuple[str, ...] = tuple(DEFAULT_COMPLEX_KEYWORDS)
    trivial_keywords: tuple[str, ...] = tuple(DEFAULT_TRIVIAL_KEYWORDS)

    @classmethod
    def from_settings(cls, settings: Any) -> "Classifier":
        """From an ``agentcom.config.AgentCom`` (its complex_keywords / trivial_keywords)."""
        return cls(tuple(settings.complex_keywords), tuple(settings.trivial_keywords))

    def classify(
        self,
        description: str,
        *,
        file_hints: Sized = (),
        verification_steps: Sized = (),
        explicit_tier: str | None = None,
    ) -> Complexity:
        """The task's ``complexity`` (protocol.md). An explicit tier wins; the inference is kept.

        Raises ValidationFailed (field ``complexity_tier``) for a tier that does not exist.
        """
        if explicit_tier is not None and explicit_tier not in TIERS:
            raise ValidationFailed(
                f"complexity_tier must be one of {', '.join(TIERS)}, got {explicit_tier!r}",
                errors=[{"field": "complexity_tier", "error": f"must be one of {', '.join(TIERS)}, got {explicit_tier!r}"}],
            )
        words = len(description.split())
        files = len(file_hints)
        steps = len(verification_steps)
        complex_kw = matcher_for(self.complex_keywords).matches(description)
        trivial_kw = matcher_for(self.trivial_keywords).matches(description)
        tier, confidence = _infer(words, files, steps, complex_kw, trivial_kw)
        inferred = InferredComplexity(
            tier=tier,  # type: ignore[arg-type]
            confidence=round(confidence, 2),
            signals=ComplexitySignals(
                word_count=words,
                file_count=files,
                verification_count=steps,
                keywords=KeywordSignals(complex=complex_kw, trivial=trivial_kw),
            ),
        )
        return Complexity(
            effective_tier=explicit_tier or tier,  # type: ignore[arg-type]
            source="explicit" if explicit_tier is not None else "inferred",
            explicit_tier=explicit_tier,  # type: ignore[arg-type]
            inferred=inferred,
        )


def classify(
    description: str,
    *,
    file_hints: Sized = (),
    verification_steps: Sized = (),
    explicit_tier: str | None = None,
    complex_keywords: Sequence[str] | None = None,
    trivial_keywords: Sequence[str] | None = None,
) -> Complexity:
    """Classify one task; keyword lists default to the shipped ones (see ``Classifier``)."""
    classifier = Classifier(
        tuple(DEFAULT_COMPLEX_KEYWORDS if complex_keywords is None else complex_keywords),
        tuple(DEFAULT_TRIVIAL_KEYWORDS if trivial_keywords is None else trivial_keywords),
    )
    return classifier.classify(
        description, file_hints=file_hints, verification_steps=verification_steps, explicit_tier=explicit_tier
    )


def explain(complexity: Complexity) -> str:
    """The human-readable ``classification_reason`` of a routing decision.

    e.g. ``inferred:standard (confidence 0.67, words=12, files=1, steps=0)`` or
    ``explicit:complex (inferred:trivial, confidence 0.90, words=4, files=0, steps=0, keywords=trivial)``.
    """
    inferred = complexity.inferred
    signals = inferred.signals
    keywords = [name for name, hit in (("complex", signals.keywords.complex), ("trivial", signals.keywords.trivial)) if hit]
    details = (
        f"confidence {inferred.confidence:.2f}, words={signals.word_count}, "
        f"files={signals.file_count}, steps={signals.verification_count}"
    )
    if keywords:
        details += f", keywords={'+'.join(keywords)}"
    if complexity.source == "explicit":
        return f"explicit:{complexity.effective_tier} (inferred:{inferred.tier}, {details})"
    if inferred.tier == "unknown":
        return "inferred:unknown (no signals; routed as standard)"
    return f"inferred:{inferred.tier} ({details})"
