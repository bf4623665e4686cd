"""The web dashboard's output panel and task table under a user's hands, and its memory caps for long-open tabs."""

from __future__ import annotations

from typing import Any

from .live import LiveHub, Sidecar, open_dashboard, wait_text

OUTPUT_TEXT = "document.getElementById('output').textContent"
SELECTED_ROWS = "Array.from(document.querySelectorAll('#tasks tbody tr.selected'), r => r.dataset.task)"
TASK_ROWS = "Array.from(document.querySelectorAll('#tasks tbody tr'), r => r.dataset.task)"
COST_ROWS = "Array.from(document.querySelectorAll('#costs tbody tr'), r => r.dataset.task)"
AT_BOTTOM = "(b => b.scrollHeight - b.scrollTop - b.clientHeight < 2)(document.getElementById('output'))"
SCROLL_TOP = "document.getElementById('output').scrollTop"


def lines(start: int, count: int) -> str:
    return "".join(f"build line {k:04d}\n" for k in range(start, start + count))


def test_auto_scroll_stops_when_the_user_scrolls_up_and_follow_resumes_it(page: Any, live: LiveHub) -> None:
    sidecar = live.sidecar("scroller")
    open_dashboard(page, live)
    assign = sidecar.take_task("a chatty build")
    for seq in range(4):                                  # 160 lines: far taller than the 320 px box
        sidecar.emit(assign, seq, "stdout", lines(seq * 40, 40))
    page.wait_for_function(f"() => {OUTPUT_TEXT}.endsWith('build line 0159\\n')")
    assert page.evaluate(AT_BOTTOM)                       # following while the user has not scrolled
    assert page.is_hidden("#output-follow")

    page.hover("#output")
    page.mouse.wheel(0, -100_000)                         # the user scrolls the output up to its first line
    page.wait_for_function(f"() => {SCROLL_TOP} === 0")
    page.wait_for_selector("#output-follow", state="visible")

    sidecar.emit(assign, 4, "stdout", lines(160, 40))
    page.wait_for_function(f"() => {OUTPUT_TEXT}.endsWith('build line 0199\\n')")
    assert page.evaluate(SCROLL_TOP) == 0                 # new output did not pull the view away
    assert not page.evaluate(AT_BOTTOM)
    assert page.is_visible("#output-follow")

    page.click("#output-follow")
    page.wait_for_function(f"() => {AT_BOTTOM}")
    assert page.is_hidden("#output-follow")
    sidecar.emit(assign, 5, "stdout", lines(200, 40))
    page.wait_for_function(f"() => {OUTPUT_TEXT}.endsWith('build line 0239\\n')")
    assert page.evaluate(AT_BOTTOM)                       # following again: the newest line is in view
    assert page.is_hidden("#output-follow")
    sidecar.close()


def two_working_tasks(live: LiveHub) -> tuple[Sidecar, dict[str, Any], Sidecar, dict[str, Any]]:
    """builder-a and builder-b each hold one task (a sidecar runs one task at a time, so b gets the second)."""
    a = live.sidecar("builder-a")
    task_a = a.take_task("alpha job")
    b = live.sidecar("builder-b")
    task_b = b.take_task("bravo job")
    assert task_a["task_id"] != task_b["task_id"]
    return a, task_a, b, task_b


def test_one_task_selected_at_a_time_switchable_from_the_table_and_the_selector(page: Any, live: LiveHub) -> None:
    a, task_a, b, task_b = two_working_tasks(live)
    id_a, id_b = task_a["task_id"], task_b["task_id"]
    open_dashboard(page, live)
    a.emit(task_a, 0, "stdout", "alpha line 1\n")
    wait_text(page, OUTPUT_TEXT, "alpha line 1\n")        # the first task with output is selected by itself
    wait_text(page, SELECTED_ROWS, [id_a])
    b.emit(task_b, 0, "stdout", "bravo line 1\n")
    page.wait_for_selector(f"#output-select option[value='{id_b}']", state="attached")  # the page has b's line
    assert page.text_content("#output") == "alpha line 1\n"                           # ... and does not show it

    page.click(f"#tasks tr[data-task='{id_b}'] .desc")   # switch by clicking the task's row
    wait_text(page, OUTPUT_TEXT, "bravo line 1\n")
    wait_text(page, SELECTED_ROWS, [id_b])
    assert page.text_content("#output-task") == id_b
    assert page.input_value("#output-select") == id_b

    a.emit(task_a, 1, "stdout", "alpha line 2\n")          # output of the task not shown is kept, not shown
    page.wait_for_function(f"() => agentcomDashboard.state.outputs.get('{id_a}').events.length === 2")
    assert page.text_content("#output") == "bravo line 1\n"

    page.select_option("#output-select", id_a)           # switch back with the output panel's selector
    wait_text(page, OUTPUT_TEXT, "alpha line 1\nalpha line 2\n")
    wait_text(page, SELECTED_ROWS, [id_a])
    assert page.text_content("#output-task") == id_a
    a.close()
    b.close()


def test_task_table_filters_by_agent(page: Any, live: LiveHub) -> None:
    a, task_a, b, task_b = two_working_tasks(live)
    waiting = live.call(lambda: live.hub.submit_dict({"description": "needs a gpu", "needed_capabilities": ["gpu"]}))
    open_dashboard(page, live)
    wait_text(page, "document.getElementById('task-count').textContent", "3 of 3 tasks")
    options = page.eval_on_selector_all("#filter-agent option", "opts => opts.map(o => o.value)")
    assert options == ["", "builder-a", "builder-b"]

    page.select_option("#filter-agent", "builder-a")
    wait_text(page, TASK_ROWS, [task_a["task_id"]])
    assert page.text_content("#task-count") == "1 of 3 tasks"
    page.select_option("#filter-agent", "builder-b")
    wait_text(page, TASK_ROWS, [task_b["task_id"]])
    page.select_option("#filter-agent", "")
    wait_text(page, "document.getElementById('task-count').textContent", "3 of 3 tasks")
    assert sorted(page.evaluate(TASK_ROWS)) == sorted([task_a["task_id"], task_b["task_id"], waiting.task_id])
    a.close()
    b.close()


def next_millisecond(live: LiveHub) -> None:
    """Wait until the hub's clock has moved on, so the next task's timestamps are later than the last one's."""
    start = live.call(live.hub.core.clock)
    while live.call(live.hub.core.clock) <= start:
        pass


def test_long_open_tab_keeps_the_latest_rows_open_tasks_and_the_hubs_totals(page: Any, live: LiveHub) -> None:
    waiting = [live.call(lambda d=d: live.hub.submit_dict({"description": d, "needed_capabilities": ["gpu"]})).task_id
               for d in ("waiting one", "waiting two")]   # open, and older than every finished task
    sidecar = live.sidecar("worker")
    open_dashboard(page, live, "keep=3&")                 # the page keeps 3 cost rows and 3 finished tasks
    done: list[str] = []
    for k in range(5):
        next_millisecond(live)
        assign = sidecar.take_task(f"job {k}")
        sidecar.complete(assign)
        done.append(assign["task_id"])
    newest = done[:1:-1]                                  # the last three, newest first

    def check() -> None:
        wait_text(page, COST_ROWS, newest)
        wait_text(page, "agentcomDashboard.state.completions.size", 3)
        wait_text(page, "Array.from(agentcomDashboard.state.tasks.keys()).sort()", sorted(waiting + newest))
        wait_text(page, "document.getElementById('task-count').textContent", "5 of 5 tasks")
        assert sorted(page.evaluate(TASK_ROWS)) == sorted(waiting + newest)
        total = page.eval_on_selector_all("#costs tfoot td", "cells => cells.map(c => c.textContent)")
        assert total == ["Total (all tasks)", "6,000", "1,700", "$0.0000", "$0.0435", "$0.0435"]  # all 5, from the hub
        assert page.inner_text("#cost-note") == "Rows: the latest 3 of 5 completed tasks. The total counts every task the hub has run."
        assert page.inner_text("#task-note") == "(2 older finished not listed; this page keeps the latest 3)"

    check()                                               # grown by live deltas
    page.reload()                                         # the token stays in the tab, keep=3 in the address
    page.wait_for_selector("#conn.conn-up")
    assert "keep=3" in page.url
    check()                                               # rebuilt from the hub's snapshot
    sidecar.close()
