"""docs/configuration.md names every setting the hub takes, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from agentcom.config import AgentCom

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented_and_no_other() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text(), flags=re.MULTILINE))
    assert documented == set(AgentCom.class_traits(config=True))
