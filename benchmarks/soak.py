"""Soak: 1,000 sidecars and 20 dashboards against one hub process for two minutes of steady work.

    python benchmarks/soak.py [--duration 120] [--sidecars 1000] [--dashboards 20] [--rate 100]
                              [--events 3] [--work-ms 300] [--rss-bound-mb 8] [--hub-setting NAME=VALUE ...]

Three processes, as in real use:

- the hub: ``agentcom hub`` (the CLI) on loopback with its SQLite store in a temporary directory;
  its RSS (``VmRSS`` of ``/proc/<pid>/status``) and its Prometheus metrics are sampled every
  ``--sample-s`` seconds;
- the sidecars (a child process): ``--sidecars`` WebSocket connections speaking the protocol. Each
  pings every ``heartbeat_ms``, accepts every task it is given, sends ``--events`` ``task_progress``
  frames (a ``stdout`` execution event each, carrying its send time) spread over ``--work-ms``,
  then completes;
- this process: ``--dashboards`` dashboard sockets (``fanout.Dashboard``: they decode every
  ``events`` frame and time each execution event from the sidecar's send to their decode) and
  the submitter, which POSTs ``--rate`` tasks/s to ``/agentcom/api/tasks`` over keep-alive
  connections for ``--duration`` seconds, then waits for the hub to finish them.

Figures: completed tasks/s; p50/p99 latency from the POST to the sidecar's receipt of the
complete ack (both processes read the same monotonic clock); p50/p99 dashboard delivery latency
(includes the hub's ``batch_interval_ms`` window); the hub's RSS over time and its robust (Theil-Sen)
slope after the warm-up; events the hub published against what each dashboard received plus what
it was told was dropped (the documented policy: a slow dashboard loses its oldest execution events
and gets ``{"type": "dropped", "count": N}``); errors: error frames, sidecar and dashboard
disconnects, refused submissions, tasks not completed, unaccounted events, out-of-order events,
hub log lines at ERROR.

Exit status 1 when there is any error, or when the RSS growth fitted over the steady part of the
run exceeds ``--rss-bound-mb``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from dispatch import _Incoming, _pct
from fanout import PAD, Dashboard

CONNECT_WAVE = 50          # sidecars connecting at once (the hub's listen backlog is 128)


# --------------------------------------------------------------------------- sidecars (child process)


class _SidecarFrame(_Incoming):
    """``_Incoming`` plus what a soak sidecar reads of ``identified`` and ``error``."""

    heartbeat_ms: int = 0
    error: str = ""
    message: str = ""


class Fleet:
    """All no-op sidecars of the child process and what they saw."""

    def __init__(self, url: str, events: int, work_ms: int) -> None:
        from agentcom.protocol import messages as m

        self.m = m
        self.url = url
        self.events = events
        self.step_s = work_ms / 1000 / (events + 1)
        self.decode = msgspec.json.Decoder(_SidecarFrame).decode
        self.encode = msgspec.json.Encoder().encode
        self.result = m.ExecutionResult(status="success", output="ok", model_used="soak", tokens_in=1, tokens_out=1,
                                        estimated_cost_usd=0.0, equivalent_claude_cost_usd=None, execution_ms=0,
                                        price_table="soak")
        self.acks: dict[str, float] = {}
        self.errors: list[str] = []
        self.disconnects: list[str] = []
        self.events_sent = 0
        self.stopping = False
        self.identified = 0
        self.all_identified = asyncio.Event()
        self.expected = 0

    async def connect(self, agent_id: str, token: str) -> Any:
        from tornado.websocket import websocket_connect

        box: list[Any] = []
        conn = await websocket_connect(self.url, on_message_callback=lambda raw: self.on_message(agent_id, box, raw))
        conn.stream.set_nodelay(True)
        box.append(conn)
        conn.write_message(self.encode(self.m.Identify(agent_id=agent_id, token=token, protocol_version=1)))
        return conn

    def on_message(self, agent_id: str, box: list[Any], raw: str | bytes | None) -> None:
        if raw is None:
            if not self.stopping:
                conn = box[0] if box else None
                self.disconnects.append(f"{agent_id}: closed {getattr(conn, 'close_code', None)} "
                                        f"{getattr(conn, 'close_reason', None)}")
            return
        frame = self.decode(raw)
        conn = box[0]
        if frame.type == "task_assign":
            if not self.send(conn, self.encode(self.m.TaskAccepted(task_id=frame.task_id, generation=frame.generation))):
                return
            asyncio.get_running_loop().call_later(self.step_s, self.progress, conn, frame.task_id, frame.generation, 0)
        elif frame.type == "task_ack":
            if frame.status == "complete":
                self.acks[frame.task_id] = time.perf_counter()
            elif frame.status != "accepted":
                self.errors.append(f"{agent_id}: unexpected ack {raw!r}")
        elif frame.type == "identified":
            self.identified += 1
            if self.identified >= self.expected:
                self.all_identified.set()
            self.heartbeat(conn, frame.heartbeat_ms / 1000, first=True)
        elif frame.type == "error":
            self.errors.append(f"{agent_id}: {raw!r}")
        elif frame.type != "pong":
            self.errors.append(f"{agent_id}: unexpected frame {raw!r}")

    @staticmethod
    def send(conn: Any, data: bytes) -> bool:
        """Write a frame; False once the socket is closed (``on_message(None)`` has counted that disconnect)."""
        from tornado.websocket import WebSocketClosedError

        try:
            conn.write_message(data)
        except WebSocketClosedError:
            return False
        return True

    def heartbeat(self, conn: Any, every_s: float, first: bool = False) -> None:
        """Ping every ``heartbeat_ms`` as real sidecars do; the first one at a random offset to spread them."""
        if self.stopping or (not first and not self.send(conn, b'{"type":"ping"}')):
            return
        delay = every_s * (random.random() if first else 1.0)
        asyncio.get_running_loop().call_later(delay, self.heartbeat, conn, every_s)

    def progress(self, conn: Any, task_id: str, generation: int, seq: int) -> None:
        m = self.m
        if seq < self.events:
            now = time.time()
            event = m.ExecutionEvent(event_type="stdout", text=f"{now:.6f} {PAD}\n", timestamp=int(now * 1000), seq=seq)
            if not self.send(conn, self.encode(m.TaskProgress(task_id=task_id, generation=generation,
                                                              progress=(seq + 1) * 100 // (self.events + 1),
                                                              execution_event=event))):
                return
            self.events_sent += 1
            asyncio.get_running_loop().call_later(self.step_s, self.progress, conn, task_id, generation, seq + 1)
        else:
            self.send(conn, self.encode(m.TaskComplete(task_id=task_id, generation=generation, result=self.result)))


def drive(spec: dict[str, Any]) -> None:
    """The sidecar process: connect and identify all, work until told to stop, then write what was seen."""

    async def main() -> None:
        fleet = Fleet(spec["url"], spec["events"], spec["work_ms"])
        tokens = list(json.loads(Path(spec["tokens"]).read_text()).items())
        fleet.expected = len(tokens)
        conns: list[Any] = []
        for start in range(0, len(tokens), CONNECT_WAVE):
            wave = tokens[start:start + CONNECT_WAVE]
            conns.extend(await asyncio.gather(*(fleet.connect(a, t) for a, t in wave)))
        await asyncio.wait_for(fleet.all_identified.wait(), 60)
        print(json.dumps({"identified": fleet.identified}), flush=True)
        cpu0 = time.process_time()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until the parent says stop
        fleet.stopping = True
        cpu = time.process_time() - cpu0
        for conn in conns:
            conn.close()
        Path(spec["out"]).write_text(json.dumps({
            "acks": fleet.acks, "errors": fleet.errors, "disconnects": fleet.disconnects,
            "events_sent": fleet.events_sent, "cpu_s": cpu}))
        print(json.dumps({"done": True}), flush=True)

    asyncio.run(main())


# --------------------------------------------------------------------------- the hub process


class HubProcess:
    """``agentcom hub`` in a child process, its RSS and its metrics."""

    def __init__(self, workdir: str, args: argparse.Namespace, sidecars: int) -> None:
        from agentcom.store import tokens
        from agentcom.store.db import open_db

        self.db = os.path.join(workdir, "hub.db")
        conn = open_db(self.db)
        self.tokens = {f"soak-{i:04d}": tokens.create_token(conn, f"soak-{i:04d}") for i in range(sidecars)}
        conn.close()
        self.admin = "aca_" + secrets.token_urlsafe(24)
        self.log_path = os.path.join(workdir, "hub.log")
        self.scrape_failures: list[str] = []
        command = [sys.executable, "-m", "agentcom", "hub", "--db", self.db, "--host", "127.0.0.1", "--port", "0"]
        for setting in args.hub_setting:
            name, _, value = setting.partition("=")
            command += [f"--{name.replace('_', '-')}", value]
        self.command = command
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                                         env={**os.environ, "AGENTCOM_ADMIN_TOKEN": self.admin})
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if " listening on " not in first:
            raise SystemExit(f"hub did not start: {first!r}\n{Path(self.log_path).read_text()[-2000:]}")
        self.url = first.rsplit(" ", 1)[1].strip()
        parsed = urllib.parse.urlsplit(self.url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80

    def rss_mb(self) -> float:
        """Resident set size in MB, or NaN once the process is gone."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return float("nan")
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")  # a zombie has no VmRSS

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> dict[str, float]:
        """The hub's Prometheus samples, keyed ``name{label=value,...}``; {} (and one more failure) if unreachable."""
        from prometheus_client.parser import text_string_to_metric_families

        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request("GET", "/agentcom/metrics", headers={"Authorization": f"Bearer {self.admin}"})
            resp = conn.getresponse()
            text = resp.read().decode()
        except (OSError, http.client.HTTPException) as exc:
            self.scrape_failures.append(f"metrics: {type(exc).__name__}: {exc}")
            return {}
        finally:
            conn.close()
        if resp.status != 200:
            self.scrape_failures.append(f"metrics answered {resp.status}: {text[:200]}")
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_errors(self) -> list[str]:
        lines = Path(self.log_path).read_text(errors="replace").splitlines()
        return [line for line in lines if "ERROR" in line or "Traceback" in line]


# --------------------------------------------------------------------------- the submitter


class Submitter:
    """POSTs tasks over keep-alive connections from a few threads, so a slow answer delays no other submit."""

    def __init__(self, hub: HubProcess, workers: int) -> None:
        self.hub = hub
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="submit")
        self.local = threading.local()
        self.submitted: dict[str, float] = {}
        self.refused: list[str] = []
        self.lag_s: list[float] = []
        self.answer_s: list[float] = []
        self.body = json.dumps({"description": "soak no-op", "complexity_tier": "trivial",
                                "metadata": {"shell_command": "true"}}).encode()

    def _post(self, due: float) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.hub.host, self.hub.port, timeout=30)
        started = time.perf_counter()
        self.lag_s.append(started - due)
        try:
            conn.request("POST", "/agentcom/api/tasks", body=self.body,
                         headers={"Authorization": f"Bearer {self.hub.admin}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.local.conn = None
            conn.close()
            self.refused.append(f"{type(exc).__name__}: {exc}")
            return
        self.answer_s.append(time.perf_counter() - started)
        if resp.status != 201:
            self.refused.append(f"{resp.status}: {answer[:200]!r}")
            return
        self.submitted[json.loads(answer)["task_id"]] = started

    async def run(self, rate: float, duration: float) -> float:
        """Submit at ``rate`` for ``duration`` seconds (open loop: task i is due at start + i / rate)."""
        loop = asyncio.get_running_loop()
        pending = []
        start = time.perf_counter()
        for i in range(int(rate * duration)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(loop.run_in_executor(self.pool, self._post, due))
        await asyncio.gather(*pending)
        return start

    def close(self) -> None:
        self.pool.shutdown()


# --------------------------------------------------------------------------- main


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Theil-Sen slope of (seconds, MB) samples in MB per minute: the median of the pairwise slopes, so one
    transient peak (dashboard buffers while the hub catches up) does not read as growth, while a leak does."""
    slopes = sorted((r2 - r1) / (t2 - t1) for i, (t1, r1) in enumerate(samples) for t2, r2 in samples[i + 1:] if t2 > t1)
    if not slopes:
        return 0.0
    mid = len(slopes) // 2
    return 60 * (slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2)


async def bench(args: argparse.Namespace) -> int:
    """The soak; neither the hub nor the sidecar process outlives it, whatever ends it (an error, Ctrl-C, SIGTERM)."""
    workdir = tempfile.mkdtemp(prefix="agentcom-soak-")
    load0 = os.getloadavg()
    hub = HubProcess(workdir, args, args.sidecars)
    children: list[subprocess.Popen[str]] = []
    try:
        return await soak(args, hub, workdir, children, load0)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        hub.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def soak(args: argparse.Namespace, hub: HubProcess, workdir: str, children: list[subprocess.Popen[str]],
               load0: tuple[float, float, float]) -> int:
    loop = asyncio.get_running_loop()
    tokens_path = os.path.join(workdir, "tokens.json")
    Path(tokens_path).write_text(json.dumps(hub.tokens))
    out_path = os.path.join(workdir, "sidecars.json")
    spec = {"url": hub.url.replace("http", "ws", 1) + "/agentcom/ws/sidecar", "tokens": tokens_path,
            "events": args.events, "work_ms": args.work_ms, "out": out_path}

    dashboards = [Dashboard() for _ in range(args.dashboards)]
    expected: list[int] = []
    readers = [asyncio.ensure_future(d.run(hub.url, hub.admin, expected)) for d in dashboards]
    connect0 = time.perf_counter()
    side = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--drive", json.dumps(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    children.append(side)
    assert side.stdout is not None and side.stdin is not None
    line = await loop.run_in_executor(None, side.stdout.readline)
    if not line.startswith("{"):
        raise SystemExit(f"sidecar process failed to start (got {line!r})")
    connect_s = time.perf_counter() - connect0
    await asyncio.sleep(1.0)  # the dashboards' snapshots and the 1,000 agent deltas settle
    connected = (await loop.run_in_executor(None, hub.metrics)).get("agentcom_connected_sidecars", 0)
    for d in dashboards:
        d.latencies.clear()

    submitter = Submitter(hub, args.submit_workers)
    samples: list[tuple[float, float, float, float, float]] = []  # (t, rss MB, completed, queued, sidecars)
    t0 = time.perf_counter()
    cpu0 = hub.cpu_s()
    stop_sampling = asyncio.Event()

    async def sample() -> None:
        while True:
            metrics = await loop.run_in_executor(None, hub.metrics)
            samples.append((time.perf_counter() - t0, hub.rss_mb(), metrics.get("agentcom_tasks{state=completed}", 0),
                            metrics.get("agentcom_queue_depth", 0), metrics.get("agentcom_connected_sidecars", 0)))
            try:
                await asyncio.wait_for(stop_sampling.wait(), args.sample_s)
                return
            except asyncio.TimeoutError:
                pass

    sampler = asyncio.ensure_future(sample())
    start = await submitter.run(args.rate, args.duration)
    submit_s = time.perf_counter() - start
    deadline = time.perf_counter() + args.drain_s
    metrics = await loop.run_in_executor(None, hub.metrics)
    while time.perf_counter() < deadline:  # drain: every submitted task finished
        finished = sum(metrics.get(f"agentcom_tasks{{state={s}}}", 0) for s in ("completed", "failed", "dead_letter"))
        if finished >= len(submitter.submitted) + len(submitter.refused) or hub.proc.poll() is not None:
            break
        await asyncio.sleep(0.25)
        metrics = await loop.run_in_executor(None, hub.metrics)
    drain_s = time.perf_counter() - start - submit_s
    stop_sampling.set()
    await sampler
    hub_cpu = hub.cpu_s() - cpu0
    published = int(metrics.get("agentcom_execution_events_total{event_type=stdout}", 0))
    expected.append(published)
    for d in dashboards:
        if d.received + d.dropped >= published:
            d.done.set()
    try:
        await asyncio.wait_for(asyncio.gather(*(d.done.wait() for d in dashboards)), args.drain_s)
    except asyncio.TimeoutError:
        pass
    dashboard_disconnects = sum(1 for r in readers if r.done())
    for r in readers:
        r.cancel()
    metrics = await loop.run_in_executor(None, hub.metrics)
    try:
        side.stdin.write("stop\n")
        side.stdin.flush()
    except BrokenPipeError:
        pass  # the sidecar process is gone: its exit status is reported below
    await loop.run_in_executor(None, side.stdout.readline)
    side.wait(30)
    try:
        seen = json.loads(Path(out_path).read_text())
    except FileNotFoundError:
        seen = {"acks": {}, "errors": ["the sidecar process wrote no results"], "disconnects": [], "events_sent": 0,
                "cpu_s": float("nan")}
    submitter.close()
    hub_exit = hub.stop()
    load1 = os.getloadavg()

    # ------------------------------------------------------------------ figures
    acks: dict[str, float] = seen["acks"]
    submitted = submitter.submitted
    done = [t for t in submitted if t in acks]
    latencies = sorted((acks[t] - submitted[t]) * 1000 for t in done)
    elapsed = max(1e-9, max(acks.values(), default=start) - start)
    delivery = sorted(x * 1000 for d in dashboards for x in d.latencies)
    received = [d.received for d in dashboards]
    told_dropped = [d.dropped for d in dashboards]
    unaccounted = sum(max(0, published - r - dr) for r, dr in zip(received, told_dropped))
    hub_dropped = int(metrics.get("agentcom_dashboard_dropped_events_total", 0))
    failed_tasks = int(sum(metrics.get(f"agentcom_tasks{{state={s}}}", 0) for s in ("failed", "dead_letter", "cancelled")))
    warm = min(30.0, args.duration / 4)
    steady = [(t, r) for t, r, *_ in samples if t >= warm]
    slope = slope_mb_per_min(steady)
    growth = slope * (steady[-1][0] - steady[0][0]) / 60 if len(steady) > 1 else 0.0
    errors = {
        "error frames at sidecars": len(seen["errors"]),
        "sidecar disconnects": len(seen["disconnects"]),
        "dashboard disconnects": dashboard_disconnects,
        "refused submissions": len(submitter.refused),
        "tasks not completed": len(submitted) - len(done),
        "failed/dead-letter/cancelled tasks": failed_tasks,
        "events lost without a dropped notice": unaccounted,
        "events out of order": sum(d.out_of_order for d in dashboards),
        "events sent but not published": seen["events_sent"] - published,
        "hub log lines at ERROR": len(hub.log_errors()),
        "hub metrics unreachable": len(hub.scrape_failures),
        "hub exit status": hub_exit,
        "sidecar process exit status": side.returncode,
    }

    print(f"soak: {args.sidecars} sidecars (1 process), {args.dashboards} dashboards, hub = `agentcom hub` "
          f"(own process); {os.cpu_count()} cores shared with other work, load average "
          f"{load0[0]:.2f} before, {load1[0]:.2f} after; Python {sys.version.split()[0]}")
    print(f"  offered     {args.rate:g} tasks/s for {args.duration:g} s, {args.events} progress events per task over "
          f"{args.work_ms} ms; connect+identify of all sidecars {connect_s:.1f} s ({int(connected)} connected)")
    print(f"  throughput  {len(done):,} tasks completed in {elapsed:.1f} s = {len(done) / elapsed:.1f} tasks/s "
          f"(submitting took {submit_s:.1f} s, drain {drain_s:.1f} s; submit lag p99 "
          f"{_pct(sorted(submitter.lag_s), 99) * 1000:.1f} ms, POST answer p50 "
          f"{_pct(sorted(submitter.answer_s), 50) * 1000:.1f} ms p99 {_pct(sorted(submitter.answer_s), 99) * 1000:.1f} ms)")
    if submit_s > 1.05 * args.duration:
        print(f"  note        the submitter fell behind: {len(submitted) / submit_s:.1f} tasks/s went in, not "
              f"{args.rate:g} (POSTs answered slower than {args.submit_workers} connections at the offered rate need)")
    if latencies:
        print(f"  task        p50 {_pct(latencies, 50):7.1f} ms   p99 {_pct(latencies, 99):7.1f} ms   "
              f"max {latencies[-1]:7.1f} ms  POST -> complete ack (includes {args.work_ms} ms of work)")
    if delivery:
        print(f"  dashboard   p50 {_pct(delivery, 50):7.1f} ms   p99 {_pct(delivery, 99):7.1f} ms   "
              f"max {delivery[-1]:7.1f} ms  sidecar send -> dashboard decode ({len(delivery):,} deliveries)")
    print(f"  events      sent {seen['events_sent']:,}, hub published {published:,}; per dashboard received "
          f"{min(received, default=0):,}..{max(received, default=0):,}, told dropped {sum(told_dropped):,} "
          f"(hub counted {hub_dropped:,}), unaccounted {unaccounted:,}")
    print(f"  cpu         hub {hub_cpu:.1f} s = {hub_cpu / max(1, len(done)) * 1e6:.0f} us/task, "
          f"sidecar process {seen['cpu_s']:.1f} s")
    print("  hub RSS       t (s)   RSS (MB)   completed   queued   sidecars")
    shown = samples if len(samples) <= 14 else samples[:: max(1, len(samples) // 12)] + [samples[-1]]
    for t, rss, completed, queued, sidecars in dict.fromkeys(shown):
        print(f"              {t:6.0f}   {rss:8.1f}   {int(completed):9,}   {int(queued):6,}   {int(sidecars):8,}")
    rss_ok = growth <= args.rss_bound_mb
    print(f"  RSS slope   {slope:+.2f} MB/min (Theil-Sen) after {warm:.0f} s warm-up = {growth:+.1f} MB over the run "
          f"(bound {args.rss_bound_mb:g} MB): {'flat' if rss_ok else 'GROWING'}; peak {max(r for _, r, *_ in samples):.1f} MB")
    total_errors = sum(v for v in errors.values())
    print(f"  errors      {total_errors}" + "".join(f"\n                {k}: {v}" for k, v in errors.items() if v))
    for sample_text in (seen["errors"][:3] + seen["disconnects"][:3] + submitter.refused[:3] + hub.log_errors()[:3]
                        + hub.scrape_failures[:3]):
        print(f"                e.g. {sample_text[:300]}")
    print(f"  hub command {' '.join(['agentcom'] + hub.command[3:])}")
    return 0 if total_errors == 0 and rss_ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of steady submission")
    parser.add_argument("--sidecars", type=int, default=1000)
    parser.add_argument("--dashboards", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0, help="tasks submitted per second")
    parser.add_argument("--events", type=int, default=3, help="progress events per task")
    parser.add_argument("--work-ms", type=int, default=300, help="how long a sidecar takes per task")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--rss-bound-mb", type=float, default=8.0,
                        help="fail when the RSS growth fitted over the steady part of the run exceeds this")
    parser.add_argument("--submit-workers", type=int, default=8, help="keep-alive HTTP connections submitting")
    parser.add_argument("--drain-s", type=float, default=60.0,
                        help="after submitting: how long to wait for the last tasks, then for the dashboards' last events")
    parser.add_argument("--hub-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a hub setting passed as --NAME VALUE to `agentcom hub` (e.g. relaxed per-address limits)")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(json.loads(args.drive))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that bench() stops the hub on the way out
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
