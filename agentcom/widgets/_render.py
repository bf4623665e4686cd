"""HTML for the panels, as pure functions of feed data (no widget, no I/O).

Every piece of text that came from an agent, a task or the hub (output, descriptions, ids,
model names, errors) goes through ``html.escape`` here before it reaches an ``HTML`` widget.
Styles are inline so the markup renders the same in JupyterLab, Notebook 7, VS Code and a
static HTML export, with no CSS to install.

Execution output uses the web dashboard's colours (``agentcom/dashboard/static/app.css``,
the ``.ev-*`` rules; a test keeps ``EVENT_COLOURS`` equal to them): ``token`` and ``stdout``
plain, ``stderr`` amber, ``error`` red and bold on its own line, ``status`` slate-grey italic
on its own line, ``tool_call`` sky blue; unknown types look like stdout. The output box
scrolls itself to the newest line with a ``column-reverse`` flex container (no JavaScript needed).
"""

from __future__ import annotations

import html
from typing import Any, Iterable, Mapping, Sequence

from agentcom.client._feed import ExecEvent, StreamInfo

AMBER = "#fbbf24"     # warnings in headers (gaps, drops, reconnecting)
RED = "#ef4444"
GREY = "#888"
PURPLE = "#a855f7"
GREEN = "#16a34a"

# Execution event colours: the dashboard's app.css values (.ev-stderr, .ev-status, .ev-error, .ev-tool_call).
EVENT_COLOURS: Mapping[str, str] = {
    "stderr": "#f59e0b",
    "status": "#94a3b8",
    "error": "#ef4444",
    "tool_call": "#7dd3fc",
}

EVENT_STYLES: Mapping[str, str] = {
    "token": "",
    "stdout": "",
    "tool_call": f"color:{EVENT_COLOURS['tool_call']}",
    "stderr": f"color:{EVENT_COLOURS['stderr']}",
    "status": f"color:{EVENT_COLOURS['status']};font-style:italic;display:block",
    "error": f"color:{EVENT_COLOURS['error']};font-weight:bold;display:block",
}
_BLOCK = ("status", "error")

STATE_COLOURS = {"idle": "#22c55e", "assigned": "#3b82f6", "working": "#a855f7", "offline": GREY}
CONNECTION_COLOURS = {"open": "#22c55e", "connecting": AMBER, "reconnecting": AMBER, "idle": GREY,
                      "closed": GREY, "unauthorized": RED}

esc = html.escape


def select_events(events: Iterable[ExecEvent], max_events: int, max_chars: int) -> list[ExecEvent]:
    """The newest events that fit both budgets (at least one), oldest first."""
    chosen: list[ExecEvent] = []
    chars = 0
    newest_first = reversed(events) if isinstance(events, Sequence) else reversed(list(events))
    for event in newest_first:
        chars += len(event.text)
        if len(chosen) >= max_events or (chars > max_chars and chosen):
            break
        chosen.append(event)
    chosen.reverse()
    return chosen


def render_events(events: Iterable[ExecEvent], *, label_tasks: bool = False) -> str:
    """Events as styled spans; consecutive inline events of one type and task share one span."""
    parts: list[str] = []
    run_type: str | None = None
    run_task: str | None = None
    run_text: list[str] = []

    def close_run() -> None:
        if run_type is None:
            return
        text = esc("".join(run_text))
        style = EVENT_STYLES.get(run_type, "")
        parts.append(f'<span class="ac-{run_type}" style="{style}">{text}</span>' if style
                     else f'<span class="ac-{run_type}">{text}</span>')

    for event in events:
        kind = event.event_type if event.event_type in EVENT_STYLES else "stdout"
        if label_tasks and event.task_id != run_task:
            close_run()
            run_type, run_text = None, []
            parts.append(f'<span style="display:block;color:{GREY};margin-top:4px">&#9656; {esc(event.task_id)}</span>')
            run_task = event.task_id
        if kind in _BLOCK:
            close_run()
            run_type, run_text = None, []
            line = event.text.rstrip("\n")
            parts.append(f'<span class="ac-{kind}" style="{EVENT_STYLES[kind]}">{esc(line)}</span>')
            continue
        if kind != run_type:
            close_run()
            run_type, run_text = kind, []
        run_text.append(event.text)
        run_task = event.task_id
    close_run()
    return "".join(parts)


def panel_html(body: str, header: str, *, height: int, empty: str = "waiting for output…") -> str:
    inner = body or f'<span style="color:{GREY};font-style:italic">{esc(empty)}</span>'
    return (
        '<div class="agentcom-execution-panel" style="font-family:var(--jp-code-font-family,monospace);'
        'font-size:12px;line-height:1.4;background:#1e1e1e;color:#e0e0e0;border-radius:4px;">'
        f'<div style="padding:4px 8px;border-bottom:1px solid #333">{header}</div>'
        f'<div style="display:flex;flex-direction:column-reverse;overflow-y:auto;max-height:{int(height)}px;'
        'padding:4px 8px">'
        f'<div style="white-space:pre-wrap;word-break:break-word;margin:0">{inner}</div>'
        "</div></div>"
    )


def stream_header(task_id: str | None, stream: StreamInfo | None, description: str, *, dropped: int,
                  connection: str | None, shown: int) -> str:
    """Task id, model (purple), ``N tokens`` (grey), agent, counts; or the all-tasks summary."""
    bits: list[str] = []
    if connection is not None and connection != "open":
        colour = CONNECTION_COLOURS.get(connection, GREY)
        bits.append(f'<span style="color:{colour}">&#9679; {esc(connection)}</span>')
    if task_id is None:
        bits.append("<b>all tasks</b>")
    else:
        bits.append(f"<b>{esc(task_id)}</b>")
        if description:
            bits.append(f'<span style="color:#bbb">{esc(_clip(description, 60))}</span>')
        if stream is not None:
            if stream.model:
                bits.append(f'<span style="color:{PURPLE}">{esc(stream.model)}</span>')
            if stream.tokens_so_far is not None:
                bits.append(f'<span style="color:{GREY}">{stream.tokens_so_far:,} tokens</span>')
            if stream.agent_id:
                bits.append(f'<span style="color:{GREY}">on {esc(stream.agent_id)}</span>')
            if stream.count > shown:
                bits.append(f'<span style="color:{GREY}">last {shown:,} of {stream.count:,} events</span>')
            if stream.gaps:
                bits.append(f'<span style="color:{AMBER}">{stream.gaps} gap(s)</span>')
    if dropped:
        bits.append(f'<span style="color:{AMBER}">{dropped:,} events dropped by the hub</span>')
    return " &middot; ".join(bits)


# --------------------------------------------------------------------------- cost table

COST_COLUMNS = (("task", "Task"), ("agent", "Agent"), ("tier", "Tier"), ("model", "Model"),
                ("tokens_in", "Tokens in"), ("tokens_out", "Tokens out"), ("cost", "Cost (USD)"),
                ("saved", "Saved vs Claude"))


def completion_row(c: Mapping[str, Any]) -> dict[str, Any]:
    """One COMPLETION record as a flat cost-table row (missing money stays None, never 0)."""
    meta = c.get("execution_meta") or {}
    decision = c.get("routing_decision") or {}
    cost = meta.get("estimated_cost_usd")
    eq = meta.get("equivalent_claude_cost_usd")
    return {
        "task_id": str(c.get("task_id") or ""),
        "description": str(c.get("description") or ""),
        "agent": c.get("agent_id") or "",
        "tier": c.get("tier") or decision.get("effective_tier") or "",
        "model": meta.get("model_used") or decision.get("selected_model") or "",
        "tokens_in": int(meta.get("tokens_in") or 0),
        "tokens_out": int(meta.get("tokens_out") or 0),
        "cost": cost,
        "saved": (eq - cost) if cost is not None and eq is not None else None,
        "completed_at": int(c.get("completed_at") or 0),
        "duration_ms": int(c.get("duration_ms") or 0),
    }


def usd(value: float | None, *, digits: int = 4) -> str:
    if value is None:
        return f'<span style="color:{GREY}">unpriced</span>'
    if value == 0:
        return f'<span style="color:{GREY}">$0.00 (local)</span>'
    return f'<span style="color:{GREEN};font-weight:bold">${value:,.{digits}f}</span>'


def saved(value: float | None) -> str:
    if value is None or value <= 0:
        return f'<span style="color:{GREY}">&ndash;</span>'
    return f'<span style="color:{GREEN}">${value:,.4f}</span>'


def cost_table_html(rows: list[dict[str, Any]], totals: dict[str, Any], hub_totals: Mapping[str, Any],
                    *, shown: int, sort_label: str) -> str:
    td = 'style="padding:2px 8px;text-align:{}"'
    left, right = td.format("left"), td.format("right")
    head = "".join(f'<th {right if k in ("tokens_in", "tokens_out", "cost", "saved") else left}>{esc(t)}</th>'
                   for k, t in COST_COLUMNS)
    body = []
    for r in rows:
        title = esc(f"{r['task_id']}: {r['description']}")
        body.append(
            "<tr>"
            f'<td {left} title="{title}"><code>{esc(_clip(r["task_id"], 22))}</code> '
            f'<span style="color:{GREY}">{esc(_clip(r["description"], 35))}</span></td>'
            f"<td {left}>{esc(r['agent'])}</td><td {left}>{esc(r['tier'])}</td>"
            f'<td {left}><span style="color:{PURPLE}">{esc(_clip(r["model"], 24))}</span></td>'
            f"<td {right}>{r['tokens_in']:,}</td><td {right}>{r['tokens_out']:,}</td>"
            f"<td {right}>{usd(r['cost'])}</td><td {right}>{saved(r['saved'])}</td>"
            "</tr>"
        )
    if not rows:
        body.append(f'<tr><td colspan="8" style="color:{GREY};font-style:italic;padding:4px 8px">'
                    "no completed tasks yet</td></tr>")
    foot = (
        f'<tr style="border-top:1px solid {GREY};font-weight:bold">'
        f"<td {left}>Total: {totals['count']:,} task(s)</td><td {left}></td><td {left}></td><td {left}></td>"
        f"<td {right}>{totals['tokens_in']:,}</td><td {right}>{totals['tokens_out']:,}</td>"
        f"<td {right}>{usd(totals['cost'])}</td><td {right}>{saved(totals['saved'])}</td></tr>"
    )
    notes = [f"sorted by {esc(sort_label)}"]
    if shown < totals["count"]:
        notes.append(f"showing {shown:,} of {totals['count']:,}")
    if totals["unpriced"]:
        notes.append(f"{totals['unpriced']} unpriced")
    if hub_totals:
        notes.append(
            "hub totals: " + _money(hub_totals.get("cost_usd")) + " spent, "
            + _money(hub_totals.get("savings_usd")) + " saved vs Claude, "
            + f"{int(hub_totals.get('tokens_in') or 0):,} in / {int(hub_totals.get('tokens_out') or 0):,} out tokens"
        )
    return (
        '<div class="agentcom-cost-table" style="font-size:12px">'
        '<table style="border-collapse:collapse;width:100%">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody><tfoot>{foot}</tfoot></table>"
        f'<div style="color:{GREY};margin-top:2px">{" &middot; ".join(notes)}</div></div>'
    )


def cost_totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    t: dict[str, Any] = {"count": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0, "saved": 0.0, "unpriced": 0}
    for r in rows:
        t["count"] += 1
        t["tokens_in"] += r["tokens_in"]
        t["tokens_out"] += r["tokens_out"]
        if r["cost"] is None:
            t["unpriced"] += 1
        else:
            t["cost"] += r["cost"]
        if r["saved"] is not None:
            t["saved"] += r["saved"]
    return t


# --------------------------------------------------------------------------- monitor header

def monitor_html(agents: Iterable[Mapping[str, Any]], queue: Mapping[str, int], *, connection: str,
                 last_error: str | None, url: str | None) -> str:
    colour = CONNECTION_COLOURS.get(connection, GREY)
    status = f'<span style="color:{colour}">&#9679;</span> {esc(connection)}'
    if url:
        status += f' <span style="color:{GREY}">{esc(url)}</span>'
    if last_error and connection != "open":
        status += f' <span style="color:{RED}">{esc(_clip(last_error, 160))}</span>'
    chips = " ".join(
        f'<span style="display:inline-block;padding:1px 6px;margin:1px;border-radius:8px;background:rgba(127,127,127,.15)">'
        f"{esc(name.replace('_', ' '))} <b>{int(count):,}</b></span>"
        for name, count in queue.items()
    )
    rows = []
    for a in sorted(agents, key=lambda a: str(a.get("agent_id"))):
        state = str(a.get("state") or "")
        current = a.get("current_task_ids") or ([a["current_task_id"]] if a.get("current_task_id") else [])
        name = f' <span style="color:{GREY}">{esc(str(a["name"]))}</span>' if a.get("name") else ""
        rows.append(
            f'<tr><td style="padding:1px 8px"><b>{esc(str(a.get("agent_id")))}</b>{name}</td>'
            f'<td style="padding:1px 8px;color:{STATE_COLOURS.get(state, GREY)}">&#9679; {esc(state)}</td>'
            f'<td style="padding:1px 8px"><code>{esc(", ".join(map(str, current)))}</code></td>'
            f'<td style="padding:1px 8px;color:{GREY}">{esc(", ".join(map(str, a.get("capabilities") or ())))}</td></tr>'
        )
    agents_html = ("<table style='border-collapse:collapse'>" + "".join(rows) + "</table>") if rows else (
        f'<span style="color:{GREY};font-style:italic">no agents connected</span>')
    return (
        '<div class="agentcom-monitor" style="font-size:12px">'
        f"<div><b>AgentCom</b> &middot; {status}</div>"
        f"<div style='margin:4px 0'>{chips}</div>"
        f"<div>{agents_html}</div></div>"
    )


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _money(value: Any) -> str:
    return "n/a" if value is None else f"${float(value):,.4f}"
