"""The complexity heuristic on described tasks, keyword matching, and its invariants."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcom.errors import ValidationFailed
from agentcom.protocol.messages import Complexity
from agentcom.routing import Classifier, classify, explain
from agentcom.routing.keywords import KeywordMatcher

F = [{"path": f"src/m{i}.py"} for i in range(10)]  # file hints
S = [{"type": "command_succeeds", "target": f"check {i}"} for i in range(10)]  # verification steps
LONG = " ".join(["and then carefully handle the edge cases around it"] * 7)  # 63 words, no keywords

# (description, files, steps, tier, confidence)
CASES = [
    # trivial: a trivial keyword, nothing big
    ("Fix typo in README", 0, 0, "trivial", 0.9),
    ("fix the typo in the docstring of parse()", 0, 0, "trivial", 0.9),
    ("Update README with the new install command", 0, 0, "trivial", 0.9),
    ("Bump version to 0.2.0", 0, 0, "trivial", 0.9),
    ("version bump for the release", 0, 0, "trivial", 0.9),
    ("Rename get_user to fetch_user", 1, 0, "trivial", 0.8),
    ("renamed variables in utils need a second look", 0, 0, "trivial", 0.9),
    ("Format the code with black", 0, 0, "trivial", 0.9),
    ("Run lint and fix warnings", 0, 1, "trivial", 0.8),
    ("typos everywhere in the user guide chapter three, please correct them all", 0, 0, "trivial", 0.8),
    ("Formatting: apply the project's formatter to every module under src", 2, 1, "trivial", 0.6),
    ("Fix linting errors reported by ruff in the hub package", 3, 0, "trivial", 0.7),
    # complex: a complex keyword
    ("Refactor the scheduler", 0, 0, "complex", 0.7),
    ("refactoring the store layer to use WAL and prepared statements", 2, 0, "complex", 0.7),
    ("Architect a plugin system for executors", 0, 0, "complex", 0.7),
    ("Plan the database migration to Postgres", 0, 0, "complex", 0.7),
    ("Migrate the settings from YAML to TOML", 0, 0, "complex", 0.7),
    ("migrating all handlers to the new auth middleware", 5, 0, "complex", 0.8),
    ("Redesign the dashboard layout", 0, 0, "complex", 0.7),
    ("Security review of token handling", 0, 0, "complex", 0.7),
    ("Overhaul error handling across the sidecar", 4, 4, "complex", 0.9),
    ("Rewrite the parser " + LONG, 6, 5, "complex", 1.0),
    ("the HTTP client was rewritten last year, port its tests", 0, 0, "complex", 0.7),
    ("re-architect the queue", 0, 0, "complex", 0.7),
    # standard: no keyword, votes decide
    ("Add retry logic with exponential backoff to the HTTP client wrapper", 1, 0, "standard", 0.67),
    ("Add a --json flag to the status command and document the output", 1, 1, "standard", 1.0),
    ("Implement pagination for GET /api/tasks with limit and offset params", 2, 2, "standard", 1.0),
    ("Add a health endpoint", 0, 0, "standard", 0.5),  # small, but no trivial keyword
    ("Write unit tests", 1, 0, "standard", 0.5),  # small, no trivial keyword: demoted
    ("Cache compiled regexes in the keyword matcher to speed up classification", 0, 0, "standard", 0.5),
    ("Add request timing metrics to every handler in the hub", 0, 2, "standard", 0.67),
    ("Support IPv6 addresses", 5, 0, "standard", 0.33),  # one of each vote: a tie is standard
    # complex by size alone
    ("Add structured logging " + LONG, 5, 0, "complex", 0.67),
    ("Support IPv6 addresses in every listener " + LONG, 5, 1, "complex", 0.67),
    ("Implement the verification runner", 4, 6, "complex", 0.67),
    ("Wire the pricing table into executions " + LONG, 4, 4, "complex", 1.0),
    # substrings are not keywords
    ("Show more information about each agent in the snapshot", 1, 0, "standard", 0.5),
    ("Store the formatted output of the reformat tool", 0, 0, "trivial", 0.9),  # "formatted" is an inflection
    ("Document the architecture decisions", 0, 0, "standard", 0.5),  # architecture is not architect
    ("Parse the platform string", 0, 0, "standard", 0.5),  # "platform" contains "format"? no: "tform"
    ("Handle insecure defaults in the example config", 0, 0, "standard", 0.5),  # insecure is not security
    ("Collect the migrations list for the dashboard", 0, 0, "complex", 0.7),  # inflection of migration
    # both kinds of keyword cancel out
    ("Rename the security module", 0, 0, "standard", 0.5),
    ("Fix typo in the migration guide", 0, 0, "standard", 0.5),
    ("Refactor and lint the executors", 2, 2, "standard", 0.67),
    # a trivial keyword outweighed by size
    ("Rename the Task class everywhere", 8, 0, "standard", 0.33),
    ("Format " + LONG, 0, 0, "standard", 0.33),
]


@pytest.mark.parametrize(("description", "files", "steps", "tier", "confidence"), CASES,
                         ids=[c[0][:40] for c in CASES])
def test_inferred_tier_of_described_tasks(description: str, files: int, steps: int, tier: str, confidence: float) -> None:
    result = classify(description, file_hints=F[:files], verification_steps=S[:steps])
    assert (result.effective_tier, result.inferred.confidence) == (tier, confidence)
    assert result.source == "inferred" and result.explicit_tier is None


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_explicit_tier_wins_and_the_inference_is_kept() -> None:
    result = classify("Fix typo in README", explicit_tier="complex")
    assert result.effective_tier == "complex" and result.source == "explicit" and result.explicit_tier == "complex"
    assert result.inferred.tier == "trivial" and result.inferred.signals.keywords.trivial
    assert explain(result) == "explicit:complex (inferred:trivial, confidence 0.90, words=4, files=0, steps=0, keywords=trivial)"
    assert classify("anything at all here", explicit_tier="unknown").effective_tier == "unknown"


def test_bad_explicit_tier_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as info:
        classify("x", explicit_tier="huge")
    assert info.value.errors[0]["field"] == "complexity_tier"


def test_nothing_at_all_is_unknown() -> None:
    result = classify("   ")
    assert (result.effective_tier, result.inferred.confidence) == ("unknown", 0.0)
    assert explain(result) == "inferred:unknown (no signals; routed as standard)"


def test_signals_are_recorded() -> None:
    result = classify("Refactor the auth module", file_hints=F[:2], verification_steps=S[:3])
    signals = result.inferred.signals
    assert (signals.word_count, signals.file_count, signals.verification_count) == (4, 2, 3)
    assert (signals.keywords.complex, signals.keywords.trivial) == (True, False)


def test_reason_reads_like_the_spec() -> None:
    result = classify("one two three four five six seven eight nine ten eleven twelve", file_hints=F[:1])
    assert explain(result) == "inferred:standard (confidence 0.67, words=12, files=1, steps=0)"


def test_keyword_lists_come_from_settings() -> None:
    from agentcom.config import AgentCom

    settings = AgentCom(db_path=":memory:", complex_keywords=["distributed"], trivial_keywords=["docstring"])
    classifier = Classifier.from_settings(settings)
    assert classifier.classify("Make the cache distributed").effective_tier == "complex"
    assert classifier.classify("Refactor it").effective_tier == "standard"  # not a keyword any more
    assert classifier.classify("Add a docstring").effective_tier == "trivial"


@pytest.mark.parametrize(("keyword", "text", "hit"), [
    ("format", "information", False),
    ("format", "Formatting fixes", True),
    ("format", "formats", True),
    ("format", "reformat", False),
    ("format", "format.", True),
    ("refactor", "REFACTORED", True),
    ("refactor", "refactors", True),
    ("rename", "renaming", True),
    ("rename", "renamed", True),
    ("rename", "surname", False),
    ("lint", "linter", True),
    ("lint", "splinter", False),
    ("lint", "flint", False),
    ("typo", "typos", True),
    ("typo", "typography", False),
    ("migrate", "migrating", True),
    ("migrate", "immigrate", False),
    ("rewrite", "rewritten", True),
    ("security", "securities", True),
    ("security", "cybersecurity", False),
    ("architect", "architecture", False),
    ("fix typo", "fixed the typos", True),
    ("fix typo", "fix a typo", True),
    ("fix typo", "fix: typo", False),
    ("fix typo", "prefix typo", False),
    ("update readme", "Update our README.md", True),
    ("bump version", "bumping the version", True),
    ("version bump", "version-bump", True),
    ("version bump", "version of the bump", False),
])
def test_keywords_match_words_and_inflections_not_substrings(keyword: str, text: str, hit: bool) -> None:
    assert KeywordMatcher([keyword]).matches(text) is hit


def test_empty_keywords_are_ignored() -> None:
    assert KeywordMatcher(["", "  ", "lint"]).keywords == ("lint",)


TIER_SIZES = st.integers(min_value=0, max_value=10)


@settings(max_examples=200, deadline=None)
@given(
    description=st.lists(
        st.sampled_from(["refactor", "typo", "fix typo", "format", "information", "migration", "rename", "Lint."])
        | st.text(alphabet="abcdefghijklmnopqrstuvwxyz-.\n\t", max_size=12),
        max_size=80,
    ).map(" ".join),
    files=TIER_SIZES,
    steps=TIER_SIZES,
    explicit=st.none() | st.sampled_from(["trivial", "standard", "complex", "unknown"]),
)
def test_classification_invariants(description: str, files: int, steps: int, explicit: str | None) -> None:
    result = classify(description, file_hints=F[:files] + F[:max(0, files - 10)], verification_steps=S[:steps],
                      explicit_tier=explicit)
    inferred = result.inferred
    assert 0 <= inferred.confidence <= 1
    if inferred.tier != "unknown":
        assert inferred.confidence > 0
    assert result.effective_tier == (explicit or inferred.tier)
    assert msgspec.json.decode(msgspec.json.encode(result), type=Complexity) == result
