"""``ModelRouter``: the pure routing functions behind the hub's ``Router`` interface.

The hub (``agentcom.hub.core.Router``) asks four things: ``classify(submission)``,
``route(task, agents, now)``, ``record(decision)`` and ``stats()``. This adapter answers
them with ``Classifier``, ``route``, ``choose_agent`` and ``RoutingStats`` over an
``EndpointRegistry``, and keeps the little state routing needs between calls:

- when each task first had to wait (for ``fallback_wait_ms`` and escalation),
- which agent and endpoint a task last went to (so a retry avoids them),
- which open tasks run on which endpoint (``in_flight`` for scoring), kept exact by
  ``task_changed`` (the hub calls it after every change of a task: ``HubCore.transitions``).

Sidecars' ``resource_report`` frames reach ``resource_report``, which files each entry
under the registered endpoint it names, for ``route`` to score.

Hub objects are read by attribute only (duck typing), so this module imports nothing
from ``agentcom.hub`` or ``agentcom.store``: a task needs ``task_id``, ``description``,
``complexity`` (dict), ``metadata``, ``file_hints``, ``verification_steps``,
``needed_capabilities``, ``assign_to``, ``routing_decision``; an agent needs ``agent_id``,
``capabilities``, ``ollama_url`` and ``last_assigned_at``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Any, Callable, Sequence

import msgspec

from agentcom.errors import ConfigError, ValidationFailed
from agentcom.protocol.messages import Complexity, RoutingDecision
from agentcom.routing.addresses import host_of, parse_address
from agentcom.routing.agents import choose_agent
from agentcom.routing.budget import EstimateUsd, Spend
from agentcom.routing.classifier import Classifier, explain
from agentcom.routing.endpoints import EndpointView, ResourceReport
from agentcom.routing.policy import RoutingPolicy
from agentcom.routing.registry import EndpointRegistry
from agentcom.routing.router import Routed, TaskView, Wait, route
from agentcom.routing.stats import RoutingStats
from agentcom.routing.targets import SERVES, Target, serves

__all__ = ["ROUTING_SETTINGS", "ModelRouter"]

log = logging.getLogger("agentcom.routing")

_MEMORY = 10_000  # tasks whose last placement is remembered (oldest forgotten first)
_RUNNING = ("assigned", "working")
BUSY_RECHECK_MS = 250  # a task waiting for a busy sidecar that serves it itself is routed again this often
_POLICY_SETTINGS = ("tier_targets", "tier_fallbacks", "fallback_wait_ms", "budget_daily_usd", "budget_monthly_usd",
                    "budget_action")
_CLASSIFIER_SETTINGS = ("complex_keywords", "trivial_keywords")
ROUTING_SETTINGS = _POLICY_SETTINGS + _CLASSIFIER_SETTINGS  # settings a running hub's routing follows


def _hub_wait(until: int, reason: str) -> Any:
    from agentcom.hub.core import Wait as HubWait  # the hub's own type; imported late to keep layers apart

    return HubWait(until=until, reason=reason)


class ModelRouter:
    """Model-aware routing for ``HubCore``; see the module docstring.

    ``spend(now) -> Spend``: cloud spend so far (the hub sums its executions table;
    ``spend_from_executions`` does exactly that). ``estimate_usd(model, tokens_in,
    tokens_out)``: price of a run, e.g. from ``agentcom.pricing``. Both are optional;
    without them the budget guard sees no spend and no estimates.
    """

    def __init__(
        self,
        settings: Any,
        registry: EndpointRegistry,
        *,
        spend: Callable[[int], Spend] | None = None,
        estimate_usd: EstimateUsd | None = None,
        wait_factory: Callable[[int, str], Any] = _hub_wait,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.classifier = Classifier.from_settings(settings)
        self.policy = RoutingPolicy.from_settings(settings)
        observe = getattr(settings, "observe", None)
        if observe is not None:  # a traitlets AgentCom: changes made while the hub runs apply to the next decision
            observe(self._settings_changed, names=list(ROUTING_SETTINGS))
        self.routing_stats = RoutingStats()
        self._spend = spend
        self._estimate_usd = estimate_usd
        self._wait_factory = wait_factory
        self._waiting_since: dict[str, int] = {}
        self._last: collections.OrderedDict[str, tuple[str, str | None]] = collections.OrderedDict()
        self._views: dict[str, tuple[Any, TaskView]] = {}  # task_id -> (complexity, its view) until forgotten
        self._hosts: dict[str | None, str | None] = {}  # ollama_url -> host_of(ollama_url)
        self._registered_hosts: dict[str, tuple[str, str]] = {}  # agent id -> (ollama_url, host registered for it)
        self._spent: tuple[int, Spend] | None = None  # (now, spend at now)
        self._running: dict[str, str] = {}  # open task_id -> endpoint id it was assigned to
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._agents: dict[str, Any] = {}  # agent_id -> the hub's agent (latest session), busy or idle
        self._reports: dict[str, dict[str, ResourceReport]] = {}  # endpoint id -> agent id -> its latest report

    def _settings_changed(self, change: Any) -> None:
        """Rebuild the frozen policy or classifier from the settings; routing itself never reads traitlets,
        so a decision costs the same whether settings change or not. A value the policy refuses keeps the
        old one (the settings' own validation already refused most)."""
        try:
            if change["name"] in _CLASSIFIER_SETTINGS:
                self.classifier = Classifier.from_settings(self.settings)
                self._views.clear()  # a view may hold a classification of the old classifier (an old row's)
            else:
                self.policy = RoutingPolicy.from_settings(self.settings)
        except ConfigError as exc:
            log.error("routing keeps its previous %s: %s", change["name"], exc)

    # ------------------------------------------------------------------ the hub's Router interface

    def classify(self, submission: Any) -> dict[str, Any]:
        """The ``complexity`` dict of a ``TaskSubmission`` (explicit tier wins, inference kept)."""
        complexity = self.classifier.classify(
            submission.description,
            file_hints=submission.file_hints,
            verification_steps=submission.verification_steps,
            explicit_tier=submission.complexity_tier,
        )
        builtins: dict[str, Any] = msgspec.to_builtins(complexity)
        return builtins

    def route(self, task: Any, agents: Sequence[Any], now: int) -> tuple[dict[str, Any], Any] | Any | None:
        """(decision dict, agent), or the hub's ``Wait``, or None when no offered agent fits."""
        self._untrack(task.task_id)  # being routed: it is queued, whatever ran before has stopped
        view = self._task_view(task)
        result = route(
            view,
            self.registry.snapshot(),
            self.policy,
            now=now,
            waiting_since=self._waiting_since.get(task.task_id),
            avoid_endpoints=self._avoid_endpoints(task),
            spend=self._spend_at(now),
            estimate_usd=self._estimate_usd,
            in_flight=self._in_flight,
        )
        if isinstance(result, Wait) and result.reason == "no_healthy_endpoint":
            served = self._served_by_a_sidecar(view, agents, now)
            if served is None and self._self_served_kinds(view, self._connected()):
                # A connected sidecar serves it itself but has no free slot: the task waits for it,
                # and that wait is no reason to fall back to another tier.
                self._waiting_since.pop(task.task_id, None)
                return self._wait_factory(now + BUSY_RECHECK_MS, "sidecar_busy")
            result = served or result
        if isinstance(result, Wait):
            self._waiting_since.setdefault(task.task_id, result.since)
            log.info("task %s waits until %d: %s (%s)", task.task_id, result.until, result.reason, result.detail)
            return self._wait_factory(result.until, result.reason)
        if result.target.type in SERVES:  # only a sidecar that serves it can run it; older ones do not say
            agents = [a for a in agents if serves(result.target.type) in a.capabilities] or agents
        agent = self._choose(task, agents, result)
        if agent is None:
            return None
        self._waiting_since.pop(task.task_id, None)
        self._remember(task.task_id, agent.agent_id, result.decision.selected_endpoint)
        self._track(task.task_id, result.decision.selected_endpoint)
        decision: dict[str, Any] = msgspec.to_builtins(result.decision)
        if decision["selected_endpoint"] is None:  # no endpoint to choose: the candidates were the agents
            decision["candidate_count"] = len(agents)
        return decision, agent

    def record(self, decision: dict[str, Any]) -> None:
        self.routing_stats.record(decision)

    def stats(self) -> dict[str, Any]:
        return self.routing_stats.to_dict()

    def _served_by_a_sidecar(self, view: TaskView, agents: Sequence[Any], now: int) -> Routed | None:
        """No healthy registered endpoint for the task's target: an offered sidecar that serves it itself
        runs it now rather than the task waiting ``fallback_wait_ms`` and escalating. Its own
        ``--openai-url`` serves an ``openai`` target as is; its embedded model (``local``) stands in for
        an ``ollama`` or ``openai`` target, as a fallback of the same tier."""
        tier = view.complexity.effective_tier
        target = self._endpoint_target(view)
        if target is None:
            return None
        for kind in self._self_served_kinds(view, agents):
            same = kind == target.type
            decision = RoutingDecision(
                effective_tier=tier, target_type=kind, selected_endpoint=None,
                selected_model=target.model if same else None, fallback_used=not same,
                fallback_from_tier=None if same else tier, fallback_reason=None if same else "no_healthy_endpoint",
                candidate_count=sum(serves(kind) in a.capabilities for a in agents),
                classification_reason=view.reason, estimated_cost_tier="local", decided_at=now)
            return Routed(decision, Target(kind, decision.selected_model), detail=f"a sidecar serves {kind} itself")
        return None

    def _endpoint_target(self, view: TaskView) -> Target | None:
        """The target the task's tier maps to, when that target needs an LLM endpoint."""
        target = self.policy.target_for(view.complexity.effective_tier)
        if target.type == "sidecar" and not view.has_shell_command:
            target = self.policy.target_for("standard")
        return target if target.needs_endpoint else None

    def _self_served_kinds(self, view: TaskView, agents: Sequence[Any]) -> list[str]:
        """Target types, best first, that one of ``agents`` serves itself for this task (``serves:<kind>``)."""
        target = self._endpoint_target(view)
        if target is None:
            return []
        return [kind for kind in (target.type, "local")
                if kind in SERVES and any(serves(kind) in a.capabilities for a in agents)]

    def _connected(self) -> list[Any]:
        """Sidecars online now, busy or not (the hub offers ``route`` only those with a free slot)."""
        return [a for a in self._agents.values() if getattr(a, "online", False)]

    # ------------------------------------------------------------------ endpoints, for the hub's API

    def endpoints_view(self) -> list[dict[str, Any]]:
        return [view.to_dict() for view in self.registry.endpoints()]

    async def register_endpoint(self, registration: Any) -> dict[str, Any]:
        """``POST /agentcom/api/endpoints`` body (host, port?, name?, kind?): register, check once, answer."""
        view = self.registry.register(registration.host, port=registration.port, name=registration.name,
                                      kind=getattr(registration, "kind", "ollama") or "ollama")
        checked = await self.registry.check(view.endpoint_id)
        return (checked or self.registry.get(view.endpoint_id) or view).to_dict()

    def remove_endpoint(self, endpoint_id: str) -> bool:
        return self.registry.unregister(endpoint_id)

    def agent_joined(self, agent: Any, peer_host: str | None = None) -> EndpointView | None:
        """Auto-register a sidecar's ``ollama_url``; a bad URL is logged, never fatal to the session."""
        self._agents[agent.agent_id] = agent
        if not getattr(agent, "ollama_url", None):
            return None
        try:
            view = self.registry.register_sidecar(agent.agent_id, agent.ollama_url, peer_host=peer_host)
            self._registered_hosts[agent.agent_id] = (agent.ollama_url, view.host)
            return view
        except ValidationFailed as exc:
            log.warning("sidecar %s sent an unusable ollama_url %r: %s", agent.agent_id, agent.ollama_url, exc.message)
            return None

    def forget(self, task_id: str) -> None:
        """Drop what is remembered about a finished or cancelled task."""
        self._waiting_since.pop(task_id, None)
        self._last.pop(task_id, None)
        self._views.pop(task_id, None)
        self._untrack(task_id)

    def task_changed(self, task: Any) -> None:
        """After any change of a task (``HubCore.transitions``): in flight at its endpoint while it is
        assigned or working, not once it is requeued, finished or cancelled."""
        if task.status != "assigned":  # a run may have ended and its cost been recorded: ask for spend again
            self._spent = None
        endpoint = (task.routing_decision or {}).get("selected_endpoint") if task.status in _RUNNING else None
        if self._running.get(task.task_id) != endpoint:
            self._untrack(task.task_id)
            self._track(task.task_id, endpoint)

    def store_failed(self) -> None:
        """The hub's store rolled writes back (``HubCore.resync``): spend read since may count runs that are gone."""
        self._spent = None
        forget = getattr(self._spend, "forget", None)
        if forget is not None:
            forget()

    def in_flight(self) -> dict[str, int]:
        """Open tasks per endpoint id, as scoring sees them."""
        return dict(self._in_flight)

    def resource_report(self, agent: Any, frame: Any, now: int) -> int:
        """A sidecar's ``resource_report``: each entry filed under the registered endpoint(s) it names.

        An entry that contradicts itself (free memory above total) or names no address refuses the
        whole frame with ValidationFailed, and nothing is filed. Entries naming the same endpoint
        (its ``ollama_url`` and the address the hub registered it at) are merged. An entry counts
        only for endpoints the agent registered or has tasks running on, others (and unknown ones)
        are skipped; figures are kept per (agent, endpoint) and combined across agents
        (``_combine``), so one sidecar can neither speak for another's endpoint nor overwrite
        what the others said. Returns how many endpoints were filed.
        """
        own = self._reportable(agent)
        merged: dict[str, ResourceReport] = {}
        for i, entry in enumerate(frame.endpoints):
            where = f"endpoints[{i}]"
            for name, free, total in (("ram", entry.ram_free_mb, entry.ram_total_mb),
                                      ("vram", entry.vram_free_mb, entry.vram_total_mb)):
                if free is not None and total is not None and free > total:
                    raise _invalid(f"{where}.{name}_free_mb", f"{free:g} exceeds {name}_total_mb {total:g}")
            ids = self._endpoint_ids(agent, entry.endpoint, f"{where}.endpoint")
            report = ResourceReport(
                reported_at=now, cpu_percent=entry.cpu_percent, ram_total_mb=entry.ram_total_mb,
                ram_free_mb=entry.ram_free_mb, vram_total_mb=entry.vram_total_mb, vram_free_mb=entry.vram_free_mb,
                free_slots=entry.free_slots, in_flight=entry.in_flight,
                loaded_models=None if entry.loaded_models is None else tuple(entry.loaded_models),
            )
            for endpoint_id in ids & own:
                seen = merged.get(endpoint_id)
                merged[endpoint_id] = report if seen is None else _merge_entries(seen, report)
        ttl = self.policy.resource_ttl_ms
        for endpoint_id, report in sorted(merged.items()):
            by_agent = self._reports.setdefault(endpoint_id, {})
            by_agent[agent.agent_id] = report
            for other in [a for a, r in by_agent.items() if now - r.reported_at > ttl and a != agent.agent_id]:
                del by_agent[other]  # stale: it no longer speaks for the endpoint
            view = self.registry.get(endpoint_id)
            self.registry.report_resources(endpoint_id, _combine(by_agent, view.agent_id if view else None))
        for endpoint_id in [e for e in self._reports if self.registry.get(e) is None]:
            del self._reports[endpoint_id]  # unregistered since
        return len(merged)

    # ------------------------------------------------------------------ internals

    def _task_view(self, task: Any) -> TaskView:
        """What routing reads of a task, built once per task: it is routed again on every attempt and
        every recheck while it waits. Kept with the complexity it was built from: a task reloaded from
        the store (a new dict) gets a new view."""
        kept = self._views.get(task.task_id)
        if kept is not None and kept[0] is task.complexity:
            return kept[1]
        try:
            complexity = msgspec.convert(task.complexity, Complexity)
        except msgspec.ValidationError:  # a row from an older hub: classify it again
            complexity = self.classifier.classify(task.description, file_hints=task.file_hints or (),
                                                  verification_steps=task.verification_steps or ())
        view = TaskView(complexity=complexity, has_shell_command=bool((task.metadata or {}).get("shell_command")),
                        reason=explain(complexity))
        if len(self._views) >= _MEMORY:  # tasks never finished here (lost with a failed write): start afresh
            self._views.clear()
        self._views[task.task_id] = (task.complexity, view)
        return view

    def _avoid_endpoints(self, task: Any) -> set[str]:
        last = self._last.get(task.task_id)
        if last is not None:
            return {last[1]} if last[1] else set()
        previous = (getattr(task, "routing_decision", None) or {}).get("selected_endpoint")
        return {previous} if isinstance(previous, str) else set()

    def _choose(self, task: Any, agents: Sequence[Any], routed: Routed) -> Any | None:
        last = self._last.get(task.task_id)
        return choose_agent(agents, needed_capabilities=task.needed_capabilities or (), near_host=routed.near_host,
                            assign_to=task.assign_to, avoid_agents={last[0]} if last else (), host_of=self._host)

    def _host(self, agent: Any) -> str | None:
        """Host of the endpoint the agent's ``ollama_url`` was registered as (``agent_joined``; a loopback
        URL is the sidecar's address), else of the URL, parsed once per URL: every idle agent is
        offered for every task, and parsing each URL again cost more than the rest of routing."""
        url = getattr(agent, "ollama_url", None)
        registered = self._registered_hosts.get(agent.agent_id)
        if registered is not None and registered[0] == url:  # a loopback URL was registered at the peer's address
            return registered[1]
        try:
            return self._hosts[url]
        except KeyError:
            if len(self._hosts) >= _MEMORY:
                self._hosts.clear()
            host = self._hosts[url] = host_of(url)
            return host

    def _reportable(self, agent: Any) -> set[str]:
        """Endpoints an agent may report on: those it registered and those its open tasks run on."""
        ids = {view.endpoint_id for view in self.registry.endpoints() if view.agent_id == agent.agent_id}
        ids.update(self._running[t] for t in getattr(agent, "tasks", ()) if t in self._running)
        return ids

    def _endpoint_ids(self, agent: Any, address: str, field: str) -> set[str]:
        """Registered endpoints an address names: as parsed (either kind's default port), and, for the
        agent's own ``ollama_url``, what it was registered as (perhaps under the sidecar's address)."""
        ids = set()
        for kind in ("ollama", "openai"):
            try:
                endpoint_id = parse_address(address, kind=kind, field=field).endpoint_id
            except ValidationFailed as exc:
                raise _invalid(field, exc.extra["errors"][0]["error"]) from None
            if self.registry.get(endpoint_id) is not None:
                ids.add(endpoint_id)
        if address == getattr(agent, "ollama_url", None):
            ids.update(view.endpoint_id for view in self.registry.endpoints() if view.agent_id == agent.agent_id)
        return ids

    def _track(self, task_id: str, endpoint_id: Any) -> None:
        if isinstance(endpoint_id, str):
            self._running[task_id] = endpoint_id
            self._in_flight[endpoint_id] += 1

    def _untrack(self, task_id: str) -> None:
        endpoint_id = self._running.pop(task_id, None)
        if endpoint_id is not None:
            self._in_flight[endpoint_id] -= 1
            if self._in_flight[endpoint_id] <= 0:
                del self._in_flight[endpoint_id]

    def _spend_at(self, now: int) -> Spend:
        """Spend so far, asked once per instant: one scheduling pass routes many tasks at the same
        ``now`` and records no execution in between, and each ask is a query over the month's runs."""
        if self._spend is None or not self.policy.has_budget:
            return Spend()
        if self._spent is None or self._spent[0] != now:
            self._spent = (now, self._spend(now))
        return self._spent[1]

    def _remember(self, task_id: str, agent_id: str, endpoint_id: str | None) -> None:
        self._last[task_id] = (agent_id, endpoint_id)
        self._last.move_to_end(task_id)
        while len(self._last) > _MEMORY:
            self._last.popitem(last=False)


def _invalid(field: str, error: str) -> ValidationFailed:
    return ValidationFailed(f"resource_report: {error} (at `{field}`)", [{"field": field, "error": error}],
                            message_type="resource_report")


def _merge_entries(first: ResourceReport, second: ResourceReport) -> ResourceReport:
    """Two entries of one report for the same endpoint (e.g. ``localhost:11434`` and the address the hub
    registered it at): tasks in flight add up; every other figure is the first one given."""
    figures = {f.name: getattr(first, f.name) for f in dataclasses.fields(first)}
    merged = {name: getattr(second, name) if value is None else value for name, value in figures.items()}
    if first.in_flight is not None and second.in_flight is not None:
        merged["in_flight"] = first.in_flight + second.in_flight
    return ResourceReport(**merged)


def _combine(by_agent: dict[str, ResourceReport], owner: str | None) -> ResourceReport:
    """One endpoint's figures from every agent that reported on it: free slots and tasks in flight
    add up; the machine's figures (load, memory, loaded models) are its owner's, else the newest."""
    reports = list(by_agent.values())
    machine = by_agent.get(owner) if owner is not None else None
    machine = machine or max(reports, key=lambda r: r.reported_at)
    free = [r.free_slots for r in reports if r.free_slots is not None]
    busy = [r.in_flight for r in reports if r.in_flight is not None]
    return ResourceReport(
        reported_at=max(r.reported_at for r in reports), cpu_percent=machine.cpu_percent,
        ram_total_mb=machine.ram_total_mb, ram_free_mb=machine.ram_free_mb, vram_total_mb=machine.vram_total_mb,
        vram_free_mb=machine.vram_free_mb, free_slots=sum(free) if free else None,
        in_flight=sum(busy) if busy else None, loaded_models=machine.loaded_models,
    )
