"""Hub settings, declared once as traitlets.

The same ``AgentCom`` Configurable is read by the Jupyter server extension
(``c.AgentCom.<name>`` in jupyter config) and by the standalone hub, which builds it
from a TOML file, ``AGENTCOM_<NAME>`` environment variables and ``--<name-with-dashes>``
flags (flag > env > file > default). Unknown names and bad values raise ConfigError.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, Union, validate, Enum
from traitlets.config import Config, Configurable

from agentcom.errors import ConfigError

DEFAULT_TIER_TARGETS = {
    "trivial": "sidecar",
    "standard": "ollama",
    "complex": "claude:claude-sonnet-4-5",
    "unknown": "ollama",
}
DEFAULT_COMPLEX_KEYWORDS = ["refactor", "architect", "migration", "redesign", "migrate", "security", "overhaul", "rewrite"]
DEFAULT_TRIVIAL_KEYWORDS = [
    "fix typo", "update readme", "bump version", "rename", "typo", "format", "lint", "version bump",
]
TARGET_TYPES = ("sidecar", "ollama", "openai", "claude", "local")


def default_db_path() -> str:
    return os.environ.get("AGENTCOM_DB") or str(Path.home() / ".agentcom" / "hub.db")


class AgentCom(Configurable):
    """Settings of an AgentCom hub (standalone or inside Jupyter)."""

    db_path = Unicode(help="SQLite file of the task store. Default ~/.agentcom/hub.db, or $AGENTCOM_DB.").tag(config=True)
    host = Unicode("127.0.0.1", help="Interface the standalone hub listens on.").tag(config=True)
    port = Int(8765, help="TCP port of the standalone hub (0 picks a free one).").tag(config=True)
    admin_token = Unicode("", help="Admin token; generated and kept next to the DB (mode 0600) when empty.").tag(config=True)
    heartbeat_ms = Int(15_000, help="How often sidecars ping, in ms.").tag(config=True)
    lease_ms = Int(60_000, help="Silence in ms after which a sidecar is gone and its tasks are reclaimed.").tag(config=True)
    max_attempts = Int(3, help="Attempts before a task goes to dead letter (per task overridable).").tag(config=True)
    batch_interval_ms = Int(100, help="Batching window in ms of dashboard deltas, and of streamed tokens on sidecars "
                                      "(sent to each in identified; a sidecar's --batch-interval-ms wins).").tag(config=True)
    max_frame_bytes = Int(1_048_576, help="Largest accepted WebSocket frame in bytes; larger ones close with 1009.").tag(config=True)
    dashboard_buffer = Int(10_000, help="Frames buffered per dashboard before the oldest execution events are dropped.").tag(config=True)
    bad_frame_limit = Int(20, help="Bad frames within bad_frame_window_ms after which a socket is closed with 1008.").tag(config=True)
    bad_frame_window_ms = Int(60_000, help="Window for bad_frame_limit, in ms.").tag(config=True)
    bad_frame_cooldown_ms = Int(30_000, help="How long the address of a socket closed for bad frames is refused "
                                             "(HTTP 429), in ms.").tag(config=True)
    progress_rate_limit = Int(5_000, help="task_progress frames per second per sidecar connection; more are "
                                          "answered rate_limited.").tag(config=True)
    frame_rate_limit = Int(1_000, help="Other frames (ping, ...) per second per sidecar connection; lifecycle "
                                       "frames (accepted/complete/failed/rejected) are never limited.").tag(config=True)
    identify_failure_limit = Int(10, help="Identifies with a bad token from one address within "
                                          "identify_failure_window_ms after which it is refused.").tag(config=True)
    identify_failure_window_ms = Int(60_000, help="Window for identify_failure_limit, in ms.").tag(config=True)
    identify_cooldown_ms = Int(300_000, help="How long an address with too many bad identifies is refused, "
                                             "in ms.").tag(config=True)
    fallback_wait_ms = Int(5_000, help="How long a tier waits for a healthy endpoint before it falls back, in ms.").tag(config=True)
    health_interval_ms = Int(30_000, help="How often LLM endpoints are health-checked, in ms.").tag(config=True)
    tier_targets = Dict(
        default_value=dict(DEFAULT_TIER_TARGETS),
        help="Tier -> target map. Values: sidecar, ollama[:model], openai[:model], claude:MODEL, local[:model].",
    ).tag(config=True)
    tier_fallbacks = Dict(
        default_value={"standard": "complex"},
        help="Which tier a tier escalates to when it has no healthy endpoint after fallback_wait_ms.",
    ).tag(config=True)
    complex_keywords = List(Unicode(), default_value=list(DEFAULT_COMPLEX_KEYWORDS), help="Words that mark complex work.").tag(config=True)
    trivial_keywords = List(Unicode(), default_value=list(DEFAULT_TRIVIAL_KEYWORDS), help="Words that mark trivial work.").tag(config=True)
    price_table = Unicode("", help="Prices file (AgentCom TOML/JSON or LiteLLM JSON) of the hub's cost estimates for the "
                                   "budget guard; empty = the shipped table. Runs are priced on sidecars with their own "
                                   "--price-table; one whose table differs says so in its log.").tag(config=True)
    reference_model = Unicode("claude-sonnet-4-5", help="Cloud model that prices the 'equivalent Claude cost' of local "
                                                        "runs (sent to sidecars in identified; a sidecar's "
                                                        "--reference-model wins).").tag(config=True)
    budget_daily_usd = Union([Float(), Unicode()], default_value=None, allow_none=True,
                             help="Daily cloud spend limit in USD (none = no limit).").tag(config=True)
    budget_monthly_usd = Union([Float(), Unicode()], default_value=None, allow_none=True,
                               help="Monthly cloud spend limit in USD (none = no limit).").tag(config=True)
    budget_action = Enum(["local", "hold"], default_value="local",
                         help="When a budget is exhausted: route complex work to a local model, or hold it queued.").tag(config=True)
    routing = Enum(["explicit", "model"], default_value="model",
                   help="'model' (default): classify, use the LLM endpoint registry with health checks (or a sidecar "
                        "that serves the target itself), fall back and apply the budget guard; 'explicit': route by "
                        "the tier map from the task's tier alone.").tag(config=True)
    snapshot_recent = Int(50, help="How many recent completions the snapshot carries.").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except TraitError as exc:
            raise ConfigError(str(exc)) from None
        if not self.db_path:
            self.db_path = default_db_path()

    # ------------------------------------------------------------------ validation

    @validate("heartbeat_ms", "lease_ms", "batch_interval_ms", "fallback_wait_ms", "health_interval_ms",
              "bad_frame_window_ms", "bad_frame_cooldown_ms", "identify_failure_window_ms", "identify_cooldown_ms")
    def _positive_ms(self, proposal: Any) -> int:
        value = proposal["value"]
        if value <= 0:
            raise TraitError(f"{proposal['trait'].name} must be a positive number of milliseconds, got {value}")
        return int(value)

    @validate("max_attempts", "bad_frame_limit", "dashboard_buffer", "snapshot_recent", "progress_rate_limit",
              "frame_rate_limit", "identify_failure_limit")
    def _positive_count(self, proposal: Any) -> int:
        value = proposal["value"]
        if value < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1, got {value}")
        return int(value)

    @validate("max_frame_bytes")
    def _frame_size(self, proposal: Any) -> int:
        value = proposal["value"]
        if not 1024 <= value <= 64 * 1024 * 1024:
            raise TraitError(f"max_frame_bytes must be between 1024 and 67108864, got {value}")
        return int(value)

    @validate("port")
    def _port(self, proposal: Any) -> int:
        value = proposal["value"]
        if not 0 <= value <= 65535:
            raise TraitError(f"port must be between 0 and 65535, got {value}")
        return int(value)

    @validate("tier_targets")
    def _tier_targets(self, proposal: Any) -> dict[str, str]:
        targets = dict(DEFAULT_TIER_TARGETS)
        for tier, target in proposal["value"].items():
            if tier not in DEFAULT_TIER_TARGETS:
                raise TraitError(f"tier_targets: unknown tier {tier!r}; expected one of trivial, standard, complex, unknown")
            if not isinstance(target, str) or target.split(":", 1)[0] not in TARGET_TYPES:
                raise TraitError(
                    f"tier_targets[{tier!r}]: target must be one of {', '.join(TARGET_TYPES)} (optionally ':MODEL'), "
                    f"got {target!r}; e.g. 'claude:claude-sonnet-4-5'"
                )
            if target.startswith("claude") and ":" not in target:
                raise TraitError(f"tier_targets[{tier!r}]: claude needs a concrete model id, e.g. 'claude:claude-sonnet-4-5'")
            targets[tier] = target
        return targets

    @validate("tier_fallbacks")
    def _tier_fallbacks(self, proposal: Any) -> dict[str, str]:
        for tier, to in proposal["value"].items():
            if tier not in DEFAULT_TIER_TARGETS or to not in DEFAULT_TIER_TARGETS:
                raise TraitError(f"tier_fallbacks: {tier!r} -> {to!r} must map a tier to a tier (trivial, standard, complex)")
        return dict(proposal["value"])

    @validate("budget_daily_usd", "budget_monthly_usd")
    def _budget(self, proposal: Any) -> float | None:
        value = proposal["value"]
        if value is None or value == "":
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TraitError(f"{proposal['trait'].name} must be a number of USD, got {value!r}") from None
        if number < 0:
            raise TraitError(f"{proposal['trait'].name} must not be negative, got {number}")
        return number

    # ------------------------------------------------------------------ loading

    @classmethod
    def setting_names(cls) -> list[str]:
        return sorted(cls.class_own_traits(config=True))

    @classmethod
    def load(
        cls,
        file: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> "AgentCom":
        """Settings from a TOML file, then ``AGENTCOM_*`` env, then explicit overrides (flags)."""
        values: dict[str, Any] = {}
        if file is not None:
            values.update(_read_toml(Path(file)))
        values.update(_from_env(os.environ if env is None else env))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        names = set(cls.setting_names())
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(config=Config({"AgentCom": values}))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("agentcom", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [agentcom] must be a table")
    return dict(section)


_ENV_SKIP = {"AGENTCOM_DB", "AGENTCOM_HUB", "AGENTCOM_AGENT_ID", "AGENTCOM_TOKEN", "AGENTCOM_ADMIN_TOKEN"}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``AGENTCOM_<NAME>`` variables, parsed by the trait's type (JSON for maps and lists)."""
    traits = AgentCom.class_own_traits(config=True)
    values: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith("AGENTCOM_") or key in _ENV_SKIP:
            continue
        name = key[len("AGENTCOM_"):].lower()
        trait = traits.get(name)
        if trait is None:
            continue  # other tools' variables share the prefix; only known names are read
        values[name] = parse_value(name, raw, trait)
    if env.get("AGENTCOM_DB"):
        values.setdefault("db_path", env["AGENTCOM_DB"])
    if env.get("AGENTCOM_ADMIN_TOKEN"):
        values.setdefault("admin_token", env["AGENTCOM_ADMIN_TOKEN"])
    return values


def parse_value(name: str, raw: str, trait: Any = None) -> Any:
    """A textual setting (env or flag) converted to the trait's type, or ConfigError."""
    trait = trait or AgentCom.class_own_traits(config=True).get(name)
    if trait is None:
        raise ConfigError(f"unknown setting {name!r}")
    try:
        if isinstance(trait, Int):
            return int(raw)
        if isinstance(trait, Bool):
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(trait, (Dict, List)):
            if isinstance(trait, Dict) and "=" in raw and not raw.lstrip().startswith("{"):
                return dict(part.split("=", 1) for part in raw.split(",") if part)
            if isinstance(trait, List) and not raw.lstrip().startswith("["):
                return [part.strip() for part in raw.split(",") if part.strip()]
            return json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        raise ConfigError(f"setting {name}: cannot parse {raw!r} as {type(trait).__name__.lower()}") from None
    return raw
