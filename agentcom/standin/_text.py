"""Deterministic "model" text for the stand-in servers.

Not a language model: a short, plausible answer assembled from the prompt's first
line and a hash of the whole prompt, so the same prompt always gives the same
answer and the same token counts (tests and demos can assert on them). Tokens
are words and punctuation marks with their leading whitespace; it is a fixed rule,
not any real tokenizer.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["count_tokens", "reply_for", "split_tokens", "topic_of"]

_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])|\s+$")

_OPENINGS = (
    "Here is how I would approach this: {topic}.",
    "Plan for \"{topic}\":",
    "Sure. To {topic_lower}, I would work in three steps.",
    "Understood: {topic}. Proposed steps:",
)
_FIRST = (
    "Read the files involved and note the current behaviour.",
    "Locate the code paths that the change touches.",
    "Reproduce the current behaviour with a small check.",
)
_SECOND = (
    "Make the smallest change that does the job, keeping the existing style.",
    "Apply the change in one place and update the callers.",
    "Edit the code, keeping the public interface stable.",
)
_THIRD = (
    "Run the tests and confirm the success criteria.",
    "Verify the result and report what changed.",
    "Check the output against the success criteria before finishing.",
)


def split_tokens(text: str) -> list[str]:
    """The pieces a stand-in streams: one token each, whitespace kept, ``"".join`` gives ``text``."""
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(split_tokens(text))


def topic_of(prompt: str, max_words: int = 16) -> str:
    """The first non-empty line of the prompt, shortened, without a trailing full stop."""
    line = next((ln.strip() for ln in prompt.splitlines() if ln.strip()), "the task")
    line = re.sub(r"^(task|description)\s*:\s*", "", line, flags=re.IGNORECASE)
    words = line.split()
    topic = " ".join(words[:max_words]) + ("..." if len(words) > max_words else "")
    return topic.rstrip(".") or "the task"


def reply_for(prompt: str) -> str:
    """A short deterministic answer to ``prompt``."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    topic = topic_of(prompt)
    opening = _OPENINGS[digest[0] % len(_OPENINGS)].format(topic=topic, topic_lower=topic[:1].lower() + topic[1:])
    steps = (_FIRST[digest[1] % len(_FIRST)], _SECOND[digest[2] % len(_SECOND)], _THIRD[digest[3] % len(_THIRD)])
    return opening + "\n" + "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
