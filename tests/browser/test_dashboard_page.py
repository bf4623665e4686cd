"""The web dashboard in a real browser against a running standalone hub."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .live import LiveHub, open_dashboard, wait_text

AMBER = "rgb(245, 158, 11)"
RED = "rgb(239, 68, 68)"


def style(page: Any, selector: str) -> dict[str, str]:
    return page.eval_on_selector(selector, """node => {
        const s = getComputedStyle(node);
        return {color: s.color, fontWeight: s.fontWeight, fontStyle: s.fontStyle};
    }""")


def test_streamed_output_shows_live_and_coloured_by_event_type(page: Any, live: LiveHub, tmp_path: Path) -> None:
    sidecar = live.sidecar("builder-1", name="Builder one")
    open_dashboard(page, live)
    assert "token=" not in page.url                       # the token moved to sessionStorage
    assert page.is_hidden("#token-form")
    page.wait_for_selector("#agents tr[data-agent='builder-1']")
    assign = sidecar.take_task("run the test suite", complexity_tier="trivial")
    page.wait_for_selector(f"#tasks tr[data-task='{assign['task_id']}'] .badge.state-working")
    lines = [("status", "starting pytest\n"), ("stdout", "collected 3 items\n"), ("token", "thinking about it "),
             ("stderr", "DeprecationWarning: old api\n"), ("error", "AssertionError: 1 != 2\n")]
    for seq, (kind, text) in enumerate(lines):
        sidecar.emit(assign, seq, kind, text)
        page.wait_for_selector(f"#output .ev-{kind}")     # each line shows up while the task is still running
    assert page.inner_text("#output-task") == assign["task_id"]
    assert page.text_content("#output") == "".join(text for _, text in lines)
    assert style(page, "#output .ev-stderr")["color"] == AMBER
    error = style(page, "#output .ev-error")
    assert error["color"] == RED and int(error["fontWeight"]) >= 700
    assert style(page, "#output .ev-status")["fontStyle"] == "italic"
    plain = style(page, "#output .ev-stdout")["color"]
    assert style(page, "#output .ev-token")["color"] == plain and plain not in (AMBER, RED)

    page.click("#output-toggle")                          # collapsible
    assert page.is_hidden("#output")
    page.click("#output-toggle")
    assert page.is_visible("#output")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    sidecar.close()


def test_cost_table_per_task_with_totals(page: Any, live: LiveHub) -> None:
    sidecar = live.sidecar("builder-2")
    open_dashboard(page, live)
    first = sidecar.take_task("refactor the parser")
    sidecar.complete(first)
    second = sidecar.take_task("update the readme")
    sidecar.complete(second, model_used="llama3.2", tokens_in=100, tokens_out=50, estimated_cost_usd=0.0,
                     equivalent_claude_cost_usd=0.0012)
    row = f"#costs tbody tr[data-task='{first['task_id']}']"
    page.wait_for_selector(f"#costs tbody tr[data-task='{second['task_id']}']")
    cells = page.eval_on_selector_all(f"{row} td", "cells => cells.map(c => c.textContent)")
    assert cells[1:] == ["builder-2", "qwen2.5-coder:7b", "1,200", "340", "$0.0000", "$0.008700", "$0.008700"]
    total = page.eval_on_selector_all("#costs tfoot td", "cells => cells.map(c => c.textContent)")
    assert total == ["Total (all tasks)", "1,300", "390", "$0.0000", "$0.009900", "$0.009900"]
    assert "saved $0.009900" in page.inner_text("#totals")
    assert page.is_hidden("#cost-note")                   # every completed task has its row: nothing to explain
    assert page.inner_text("#queue .state-completed .n") == "2"
    sidecar.close()


def test_agent_text_is_escaped_and_runs_nothing(page: Any, live: LiveHub) -> None:
    script = "<script>window.__pwned_script = 1</script>"
    image = '<img src=x onerror="window.__pwned_img = 1">'
    sidecar = live.sidecar("builder-3", name='<img src=x onerror="window.__pwned_name = 1">')
    open_dashboard(page, live)
    assign = sidecar.take_task('<img src=x onerror="window.__pwned_desc = 1"> tidy up')
    sidecar.emit(assign, 0, "stdout", script + "\n")
    sidecar.emit(assign, 1, "stderr", image + "\n")
    sidecar.emit(assign, 2, "error", "</span><b onmouseover=alert(1)>bold?</b>\n")
    page.wait_for_selector("#output .ev-error")
    page.hover("#output")
    text = page.inner_text("#output")
    assert script in text and image in text and "<b onmouseover=alert(1)>bold?</b>" in text
    assert page.inner_text(f"#tasks tr[data-task='{assign['task_id']}'] .desc").startswith("<img src=x onerror=")
    assert '<img src=x onerror="window.__pwned_name = 1">' in page.inner_text("#agents")
    assert page.evaluate("document.querySelectorAll('main img, main script, #output b').length") == 0
    flags = page.evaluate("[window.__pwned_script, window.__pwned_img, window.__pwned_name, window.__pwned_desc]")
    assert flags == [None, None, None, None]
    sidecar.close()


def test_task_table_filters_and_sorts(page: Any, live: LiveHub) -> None:
    for description, tier in (("b second", "trivial"), ("a first", "complex"), ("c third", "trivial")):
        live.call(lambda d=description, t=tier: live.hub.submit_dict({"description": d, "complexity_tier": t}))
    open_dashboard(page, live)
    page.wait_for_selector("#tasks tbody tr >> nth=2")
    page.select_option("#filter-tier", "trivial")
    wait_text(page, "document.getElementById('task-count').textContent", "2 of 3 tasks")
    page.select_option("#filter-tier", "")
    page.click("#tasks th[data-key='description']")
    wait_text(page, "Array.from(document.querySelectorAll('#tasks tbody .desc'), c => c.textContent).join('|')",
              "a first|b second|c third")
    page.click("#tasks th[data-key='description']")
    wait_text(page, "Array.from(document.querySelectorAll('#tasks tbody .desc'), c => c.textContent).join('|')",
              "c third|b second|a first")
    page.select_option("#filter-state", "queued")
    wait_text(page, "document.getElementById('task-count').textContent", "3 of 3 tasks")
    page.click("#tasks tbody tr >> nth=0 >> button.cancel")
    wait_text(page, "document.getElementById('task-count').textContent", "2 of 3 tasks")  # cancelled: filtered out


def test_asks_for_the_token_when_missing_or_wrong(page: Any, live: LiveHub) -> None:
    page.goto(f"{live.hub.url}/agentcom/?token=aca_wrong")
    page.wait_for_selector("#token-form:not([hidden])")
    page.fill("#token-input", live.hub.admin_token)
    page.click("#token-form button")
    page.wait_for_selector("#conn.conn-up")
    assert page.is_hidden("#token-form")


def test_reconnects_by_itself(page: Any, live: LiveHub) -> None:
    open_dashboard(page, live)
    live.call(lambda: live.hub.dashboard_fanout.close_all(1001, "test"))
    page.wait_for_selector("#conn.conn-down")
    live.call(lambda: live.hub.submit_dict({"description": "submitted while the page was away"}))
    page.wait_for_selector("#conn.conn-up", timeout=20_000)
    page.wait_for_selector("#tasks .desc:text('submitted while the page was away')")
    assert re.fullmatch(r"\d+ of \d+ tasks", page.inner_text("#task-count"))
