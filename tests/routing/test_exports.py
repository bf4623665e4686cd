"""The public surface of ``agentcom.routing`` is exactly its sorted ``__all__``."""

from __future__ import annotations

import agentcom.routing as routing


def test_all_is_sorted_and_resolves() -> None:
    assert routing.__all__ == sorted(routing.__all__)
    for name in routing.__all__:
        assert getattr(routing, name) is not None, name


def test_no_public_name_is_left_out() -> None:
    public = {name for name, value in vars(routing).items()
              if not name.startswith("_") and getattr(value, "__module__", "").startswith("agentcom.routing.")}
    assert public <= set(routing.__all__)
