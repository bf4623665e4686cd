// AgentCom dashboard: one page, no build step. Talks only to the dashboard WebSocket.
// Every piece of hub or agent text reaches the DOM through textContent (see el()), never as markup.
"use strict";

(function () {
  const STATES = ["queued", "assigned", "working", "completed", "failed", "dead_letter", "cancelled"];
  const TIERS = ["trivial", "standard", "complex", "unknown"];
  const PRIORITY_RANK = { urgent: 0, high: 1, normal: 2, low: 3 };
  const MAX_EVENTS_PER_TASK = 5000;
  const MAX_TASKS_WITH_OUTPUT = 200;
  const TOKEN_KEY = "agentcom-token";
  const FINISHED = new Set(["completed", "failed", "dead_letter", "cancelled"]);
  // A tab left open for days must not grow without end: it keeps the KEEP most recent cost rows and
  // finished tasks (open tasks are always kept; money totals come from the hub, so they stay exact).
  // "?keep=N" in the page's address changes the cap.
  const KEEP = (() => {
    const n = Number.parseInt(new URLSearchParams(location.search).get("keep"), 10);
    return Number.isInteger(n) && n >= 1 ? Math.min(n, 100000) : 500;
  })();

  const authMode = document.querySelector('meta[name="agentcom-auth"]').content;
  const $ = (id) => document.getElementById(id);

  const state = {
    agents: new Map(), tasks: new Map(), completions: new Map(), outputs: new Map(),
    queue: {}, totals: {}, selected: null, sort: { key: "updated_at", dir: -1 },
    follow: true, ws: null, retryMs: 500, dirty: false, everConnected: false,
  };

  // ------------------------------------------------------------------ DOM helpers (text only)

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === "class") node.className = v;
        else if (k === "dataset") Object.assign(node.dataset, v);
        else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v);
      }
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const fmtUsd = (v) => (v === null || v === undefined ? "—" : "$" + Number(v).toFixed(v !== 0 && Math.abs(v) < 0.01 ? 6 : 4));
  const fmtInt = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"));
  const fmtTime = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "—");
  const shortId = (id) => (id && id.startsWith("task-") ? id.slice(5, 13) : id || "");

  // ------------------------------------------------------------------ connection

  function token() {
    const params = new URLSearchParams(location.search);
    const fromUrl = params.get("token");
    if (fromUrl) {
      sessionStorage.setItem(TOKEN_KEY, fromUrl);
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function socketUrl() {
    const url = new URL("ws/dashboard", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    const t = token();
    if (t) url.searchParams.set("token", t);
    return url.toString();
  }

  function setConn(kind, text) {
    const c = $("conn");
    c.className = "conn conn-" + kind;
    c.textContent = text;
  }

  function connect() {
    if (authMode === "token" && !token()) {
      $("token-form").hidden = false;
      setConn("down", "admin token needed");
      return;
    }
    setConn("connecting", state.everConnected ? "reconnecting…" : "connecting…");
    let opened = false;
    const ws = new WebSocket(socketUrl());
    state.ws = ws;
    ws.onopen = () => {
      opened = true;
      state.everConnected = true;
      state.retryMs = 500;
      $("token-form").hidden = true;
      setConn("up", "live");
      if ($("only-selected").checked && state.selected) send({ type: "subscribe", task_id: state.selected });
    };
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      onFrame(frame);
    };
    ws.onclose = (ev) => {
      state.ws = null;
      if (!opened && authMode === "token" && !state.everConnected) {
        // Refused before the upgrade: most likely a wrong token. Ask again, keep retrying meanwhile.
        $("token-form").hidden = false;
      }
      setConn("down", "disconnected, retrying in " + Math.round(state.retryMs / 100) / 10 + " s");
      setTimeout(connect, state.retryMs);
      state.retryMs = Math.min(state.retryMs * 2, 10000);
    };
  }

  function send(obj) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(obj));
  }

  // ------------------------------------------------------------------ frames

  function onFrame(frame) {
    switch (frame.type) {
      case "snapshot": applySnapshot(frame.data); break;
      case "events": for (const item of frame.data) applyDelta(item); break;
      case "execution_event": onExecution(frame); break;
      case "dropped": notice(state.selected, "… " + frame.count + " output events dropped (this dashboard fell behind)"); break;
      case "command_result": flash(frame.command.replace("_task", "") + " " + shortId(frame.task_id) + ": " + frame.status); break;
      case "error": flash("error: " + frame.message, true); break;
      default: break;
    }
    if (frame.type === "snapshot" || frame.type === "events") trim();
    markDirty();
  }

  // Map order is arrival order, oldest first: trimming drops from the front.
  const byTime = (key) => (a, b) => (a[key] || 0) - (b[key] || 0);

  function applySnapshot(data) {
    state.agents = new Map((data.agents || []).map((a) => [a.agent_id, a]));
    state.tasks = new Map((data.tasks || []).slice().sort((a, b) => byTime("updated_at")(a, b) || byTime("created_at")(a, b)).map((t) => [t.task_id, t]));
    state.completions = new Map((data.recent_completions || []).slice().sort(byTime("completed_at")).map((c) => [c.task_id, c]));
    state.queue = data.queue || {};
    state.totals = data.totals || {};
  }

  function applyDelta(item) {
    switch (item.kind) {
      case "task": {
        const old = state.tasks.get(item.task.task_id);
        state.tasks.delete(item.task.task_id);
        state.tasks.set(item.task.task_id, Object.assign({}, item.task, old && old.progress !== undefined ? { progress: old.progress } : {}));
        break;
      }
      case "progress": {
        const t = state.tasks.get(item.task_id);
        if (t) t.progress = item.progress;
        break;
      }
      case "completion":
        state.completions.delete(item.completion.task_id);
        state.completions.set(item.completion.task_id, item.completion);
        break;
      case "agent": state.agents.set(item.agent.agent_id, item.agent); break;
      case "agent_left": state.agents.delete(item.agent_id); break;
      case "stats": state.queue = item.queue; state.totals = item.totals; break;
      case "execution_event": onExecution(item); break;
      default: break;
    }
  }

  function trim() {
    while (state.completions.size > KEEP) state.completions.delete(state.completions.keys().next().value);
    if (state.tasks.size <= KEEP) return;
    const finished = [];
    for (const t of state.tasks.values()) if (FINISHED.has(t.status) && t.task_id !== state.selected) finished.push(t);
    if (finished.length <= KEEP) return;
    finished.sort(byTime("updated_at"));  // stable: equal times stay in arrival order
    for (const t of finished.slice(0, finished.length - KEEP)) state.tasks.delete(t.task_id);
  }

  function outputOf(taskId) {
    let out = state.outputs.get(taskId);
    if (!out) {
      out = { events: [], lastSeq: null, generation: null };
      state.outputs.set(taskId, out);
      if (state.outputs.size > MAX_TASKS_WITH_OUTPUT) {
        for (const key of state.outputs.keys()) {
          if (key !== state.selected) { state.outputs.delete(key); break; }
        }
      }
    }
    return out;
  }

  function onExecution(ev) {
    const out = outputOf(ev.task_id);
    const entries = [];
    if (out.generation !== null && ev.generation !== out.generation) {
      entries.push({ event_type: "status", text: "— attempt (generation " + ev.generation + ") —\n", meta: true });
      out.lastSeq = null;
    } else if (out.lastSeq !== null && ev.seq > out.lastSeq + 1) {
      entries.push({ event_type: "status", text: "… " + (ev.seq - out.lastSeq - 1) + " events missing\n", meta: true });
    }
    out.generation = ev.generation;
    out.lastSeq = ev.seq;
    entries.push({ event_type: ev.event_type, text: ev.text, model: ev.model });
    for (const entry of entries) {
      out.events.push(entry);
      if (out.events.length > MAX_EVENTS_PER_TASK) out.events.shift();
    }
    if (state.selected === null) select(ev.task_id);
    else if (state.selected === ev.task_id) for (const entry of entries) appendOutput(entry);
  }

  function notice(taskId, text) {
    const entry = { event_type: "status", text: text + "\n", meta: true };
    if (taskId) outputOf(taskId).events.push(entry);
    if (taskId === state.selected) appendOutput(entry);
  }

  // ------------------------------------------------------------------ output panel

  const outputBox = () => $("output");

  function appendOutput(entry) {
    const box = outputBox();
    const cls = "ev ev-" + (entry.event_type || "stdout") + (entry.meta ? " ev-meta" : "");
    box.append(el("span", { class: cls, "data-type": entry.event_type }, entry.text));
    while (box.childNodes.length > MAX_EVENTS_PER_TASK) box.removeChild(box.firstChild);
    if (state.follow) box.scrollTop = box.scrollHeight;
    else $("output-follow").hidden = false;
  }

  function select(taskId) {
    state.selected = taskId || null;
    const box = outputBox();
    box.replaceChildren();
    $("output-task").textContent = taskId ? taskId : "";
    if (taskId) for (const entry of outputOf(taskId).events) appendOutput(entry);
    state.follow = true;
    $("output-follow").hidden = true;
    box.scrollTop = box.scrollHeight;
    if ($("only-selected").checked) send({ type: "subscribe", task_id: state.selected });
    markDirty();
  }

  function setupOutput() {
    const box = outputBox();
    box.addEventListener("scroll", () => {
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
      state.follow = atBottom;
      $("output-follow").hidden = atBottom;
    });
    $("output-follow").addEventListener("click", () => {
      state.follow = true;
      box.scrollTop = box.scrollHeight;
      $("output-follow").hidden = true;
    });
    $("output-toggle").addEventListener("click", () => {
      const body = $("output-body");
      body.hidden = !body.hidden;
      $("output-toggle").textContent = body.hidden ? "▸" : "▾";
      $("output-toggle").setAttribute("aria-expanded", String(!body.hidden));
    });
    $("output-select").addEventListener("change", (e) => select(e.target.value));
    $("only-selected").addEventListener("change", (e) => {
      send({ type: "subscribe", task_id: e.target.checked ? state.selected : null });
    });
  }

  // ------------------------------------------------------------------ tables

  function markDirty() {
    if (state.dirty) return;
    state.dirty = true;
    requestAnimationFrame(render);
  }

  function fillSelect(select, values) {
    const current = select.value;
    const wanted = ["", ...values];
    const have = Array.from(select.options).map((o) => o.value);
    if (wanted.join("\u0000") !== have.join("\u0000")) {
      select.replaceChildren(...wanted.map((v) => el("option", { value: v }, v === "" ? "all" : v)));
      select.value = wanted.includes(current) ? current : "";
    }
  }

  function renderHeader() {
    const t = state.totals;
    $("totals").replaceChildren(
      el("span", null, "spent ", el("b", null, fmtUsd(t.cost_usd))),
      el("span", null, "Claude equiv. ", el("b", null, fmtUsd(t.equivalent_claude_cost_usd))),
      el("span", { class: "saved" }, "saved ", el("b", null, fmtUsd(t.savings_usd))),
      el("span", null, "tokens ", el("b", null, fmtInt(t.tokens_in) + " in / " + fmtInt(t.tokens_out) + " out")),
    );
    $("queue").replaceChildren(...STATES.map((s) =>
      el("div", { class: "count state-" + s, "data-state": s }, el("span", { class: "n" }, fmtInt(state.queue[s] || 0)), el("span", null, s.replace("_", " ")))));
  }

  function renderAgents() {
    const rows = Array.from(state.agents.values()).sort((a, b) => a.agent_id.localeCompare(b.agent_id));
    $("agents").tBodies[0].replaceChildren(...rows.map((a) => el("tr", { "data-agent": a.agent_id },
      el("td", { class: "mono" }, a.agent_id),
      el("td", null, a.name || ""),
      el("td", null, el("span", { class: "badge agent-" + a.state }, a.state)),
      el("td", { class: "mono" }, a.current_task_id ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); select(a.current_task_id); } }, shortId(a.current_task_id)) : ""),
      el("td", null, (a.capabilities || []).join(", ")),
      el("td", null, fmtTime(a.connected_at)),
    )));
    $("agents-empty").hidden = rows.length > 0;
  }

  function sortValue(task, key) {
    if (key === "priority") return PRIORITY_RANK[task.priority] ?? 9;
    if (key === "status") return STATES.indexOf(task.status);
    const v = task[key];
    return v === null || v === undefined ? "" : v;
  }

  function renderTasks() {
    const all = Array.from(state.tasks.values());
    fillSelect($("filter-state"), STATES);
    fillSelect($("filter-tier"), TIERS);
    fillSelect($("filter-agent"), Array.from(new Set(all.map((t) => t.assigned_to).filter(Boolean).concat(Array.from(state.agents.keys())))).sort());
    const fState = $("filter-state").value, fAgent = $("filter-agent").value, fTier = $("filter-tier").value;
    const { key, dir } = state.sort;
    const rows = all
      .filter((t) => (!fState || t.status === fState) && (!fAgent || t.assigned_to === fAgent) && (!fTier || t.tier === fTier))
      .sort((a, b) => {
        const x = sortValue(a, key), y = sortValue(b, key);
        return (x < y ? -1 : x > y ? 1 : 0) * dir || (b.updated_at - a.updated_at);
      });
    $("task-count").textContent = rows.length + " of " + all.length + " tasks";
    // The hub counts every task; the snapshot lists only the latest finished ones and this page keeps KEEP.
    const notListed = [...FINISHED].reduce((n, s) => n + (state.queue[s] || 0), 0) - all.filter((t) => FINISHED.has(t.status)).length;
    $("task-note").hidden = notListed <= 0;
    $("task-note").textContent = "(" + fmtInt(notListed) + " older finished not listed; this page keeps the latest " + fmtInt(KEEP) + ")";
    for (const th of $("tasks").tHead.rows[0].cells) {
      th.classList.toggle("sorted-asc", th.dataset.key === key && dir === 1);
      th.classList.toggle("sorted-desc", th.dataset.key === key && dir === -1);
    }
    $("tasks").tBodies[0].replaceChildren(...rows.slice(0, 500).map((t) => {
      const actions = el("td", { class: "actions" });
      if (!FINISHED.has(t.status)) {
        actions.append(el("button", { type: "button", class: "cancel", onclick: (e) => { e.stopPropagation(); send({ type: "cancel_task", task_id: t.task_id }); } }, "cancel"));
      } else if (t.status !== "completed") {
        actions.append(el("button", { type: "button", class: "retry", onclick: (e) => { e.stopPropagation(); send({ type: "retry_task", task_id: t.task_id }); } }, "retry"));
      }
      return el("tr", { "data-task": t.task_id, class: t.task_id === state.selected ? "selected" : "", onclick: () => select(t.task_id) },
        el("td", { class: "mono", title: t.task_id }, shortId(t.task_id)),
        el("td", { class: "desc", title: t.description }, t.description),
        el("td", null, el("span", { class: "badge state-" + t.status }, t.status)),
        el("td", null, t.tier || ""),
        el("td", { class: "mono" }, t.assigned_to || ""),
        el("td", null, t.priority),
        el("td", null, t.progress !== undefined && t.progress !== null ? Math.round(t.progress) + "%" : ""),
        el("td", null, fmtTime(t.updated_at)),
        el("td", { class: "num" }, t.cost_usd === null || t.cost_usd === undefined ? "" : fmtUsd(t.cost_usd)),
        actions);
    }));
    const options = all.filter((t) => state.outputs.has(t.task_id) || t.task_id === state.selected || ["assigned", "working"].includes(t.status));
    const outSelect = $("output-select");
    const wanted = ["", ...options.map((t) => t.task_id)];
    if (state.selected && !wanted.includes(state.selected)) wanted.push(state.selected);
    if (wanted.join("\u0000") !== Array.from(outSelect.options).map((o) => o.value).join("\u0000")) {
      outSelect.replaceChildren(...wanted.map((id) => el("option", { value: id }, id === "" ? "(none)" : shortId(id) + " " + ((state.tasks.get(id) || {}).description || "").slice(0, 40))));
    }
    outSelect.value = state.selected || "";
  }

  function renderCosts() {
    const rows = Array.from(state.completions.values()).sort((a, b) => b.completed_at - a.completed_at);
    $("costs").tBodies[0].replaceChildren(...rows.map((c) => {
      const meta = c.execution_meta || {};
      const cost = meta.estimated_cost_usd, eq = meta.equivalent_claude_cost_usd;
      const saved = cost !== null && cost !== undefined && eq !== null && eq !== undefined ? eq - cost : null;
      return el("tr", { "data-task": c.task_id, onclick: () => select(c.task_id) },
        el("td", { class: "mono", title: c.description || "" }, shortId(c.task_id)),
        el("td", { class: "mono" }, c.agent_id || ""),
        el("td", { class: "mono" }, meta.model_used || "—"),
        el("td", { class: "num" }, fmtInt(meta.tokens_in)),
        el("td", { class: "num" }, fmtInt(meta.tokens_out)),
        el("td", { class: "num cost" }, fmtUsd(cost)),
        el("td", { class: "num" }, fmtUsd(eq)),
        el("td", { class: "num saved" }, fmtUsd(saved)));
    }));
    // The hub's snapshot carries only its latest completions and this page keeps at most KEEP rows;
    // the footer is the hub's own running total, so it counts the rows not shown too.
    const completed = state.queue.completed || 0;
    $("cost-note").hidden = rows.length >= completed;
    $("cost-note").textContent = "Rows: the latest " + fmtInt(rows.length) + " of " + fmtInt(completed) +
      " completed tasks. The total counts every task the hub has run.";
    const t = state.totals;
    $("costs").tFoot.replaceChildren(el("tr", { class: "total" },
      el("td", { colspan: "3" }, "Total (all tasks)"),
      el("td", { class: "num" }, fmtInt(t.tokens_in)),
      el("td", { class: "num" }, fmtInt(t.tokens_out)),
      el("td", { class: "num cost" }, fmtUsd(t.cost_usd)),
      el("td", { class: "num" }, fmtUsd(t.equivalent_claude_cost_usd)),
      el("td", { class: "num saved" }, fmtUsd(t.savings_usd))));
  }

  function render() {
    state.dirty = false;
    renderHeader();
    renderAgents();
    renderTasks();
    renderCosts();
  }

  let flashTimer = null;
  function flash(text, bad) {
    const f = $("flash");
    f.textContent = text;
    f.className = "flash " + (bad ? "flash-bad" : "flash-ok");
    f.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { f.hidden = true; }, 3000);
  }

  // ------------------------------------------------------------------ start

  function setup() {
    for (const th of $("tasks").tHead.rows[0].cells) {
      if (!th.dataset.key) continue;
      th.addEventListener("click", () => {
        const key = th.dataset.key;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
        markDirty();
      });
    }
    for (const id of ["filter-state", "filter-agent", "filter-tier"]) $(id).addEventListener("change", markDirty);
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
      $("token-form").hidden = true;
      if (state.ws) state.ws.close(); else connect();
    });
    setupOutput();
    render();
    connect();
  }

  window.agentcomDashboard = { state, select };
  setup();
})();
