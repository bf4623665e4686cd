"""Execution-event fan-out: N sidecars stream output through one hub to M dashboards.

    python benchmarks/fanout.py [--sidecars 8] [--dashboards 10] [--rate 10000] [--seconds 5]

Three processes, as in real use: the hub (``agentcom.Hub`` on loopback with its SQLite
store), the sidecars (raw WebSockets speaking the protocol: identify, accept the task,
then ``task_progress`` frames with one ``stdout`` execution event each, paced to ``--rate``
events/s in total), and the dashboards (this process: WebSocket readers decoding every
``events`` frame). Each event carries its send time; a dashboard's delivery latency is the
time from the sidecar's send to the dashboard's decode, so it includes the hub's batching
window (``batch_interval_ms``, 100 ms by default). Target: 10,000 events/s from 8 sidecars
to 10 dashboards with p99 under 250 ms, every event delivered to every dashboard in order.

The hub runs with its default settings but the batch interval (``--batch-ms``), so the
dashboards' buffers are the default ``dashboard_buffer`` (10,000 items, one second of this
load): a dashboard that falls further behind loses its oldest events, and the run fails.
The exit status is 0 when delivery was complete and the target met; ``--no-target``
judges delivery alone (the figures are printed either way). ``--profile`` prints the hub
process's cProfile to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from typing import Any

import msgspec

PAD = "x" * 48  # a typical short line of output


# --------------------------------------------------------------------------- hub process


def serve(db_path: str, sidecars: int, batch_ms: int, buffer: int | None, profile: bool) -> None:
    from agentcom import Hub

    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU time: other processes do not count

    async def main() -> None:
        settings: dict[str, Any] = {"batch_interval_ms": batch_ms}
        if buffer is not None:
            settings["dashboard_buffer"] = buffer
        hub = await Hub(db_path=db_path, host="127.0.0.1", port=0, **settings).start()
        tokens = {f"bench-{i}": hub.create_agent_token(f"bench-{i}") for i in range(sidecars)}
        print(json.dumps({"url": hub.url, "admin": hub.admin_token, "tokens": tokens}), flush=True)
        cpu0 = time.process_time()
        if profiler is not None:
            profiler.enable()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # until the parent says stop
        if profiler is not None:
            profiler.disable()
        print(json.dumps({"cpu_s": time.process_time() - cpu0, "dropped": hub.dashboard_fanout.dropped_total,
                          "buffer": hub.settings.dashboard_buffer}), flush=True)
        await hub.stop()

    asyncio.run(main())
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(35)
        print(out.getvalue(), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- sidecars process


def drive(url: str, tokens: dict[str, str], rate: int, seconds: float) -> None:
    from tornado.websocket import websocket_connect

    from agentcom.protocol import codec
    from agentcom.protocol import messages as m

    ws_url = url.replace("http", "ws", 1) + "/agentcom/ws/sidecar"
    per_sidecar = rate / len(tokens)
    tick = 0.01

    async def sidecar(agent_id: str, token: str, ready: asyncio.Event, go: asyncio.Event) -> int:
        ws = await websocket_connect(ws_url, max_message_size=8 << 20)
        ws.stream.set_nodelay(True)
        await ws.write_message(codec.encode(m.Identify(agent_id=agent_id, token=token, protocol_version=1)))
        assign: dict[str, Any] = {}
        while not assign:
            frame = json.loads(await ws.read_message())
            if frame["type"] == "task_assign":
                assign = frame
            elif frame["type"] == "identified":
                ready.set()
        task_id, gen = assign["task_id"], assign["generation"]
        await ws.write_message(codec.encode(m.TaskAccepted(task_id=task_id, generation=gen)))
        await go.wait()
        # One text frame per event, written at once, as write_message writes it, without the asyncio
        # task write_message wraps each frame in: the harness's own CPU is the hub's on a small machine.
        write_frame = ws.protocol._write_frame  # type: ignore[union-attr]
        seq, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(elapsed * per_sidecar) + 1
            while seq < due:
                now = time.time()
                event = m.ExecutionEvent(event_type="stdout", text=f"{now:.6f} {PAD}\n", timestamp=int(now * 1000), seq=seq)
                write_frame(True, 0x1, codec.encode_bytes(m.TaskProgress(task_id=task_id, generation=gen,
                                                                         execution_event=event)))
                seq += 1
            await asyncio.sleep(tick)
        result = m.ExecutionResult(status="success", output="", model_used="bench", tokens_in=0, tokens_out=0,
                                   estimated_cost_usd=0.0, equivalent_claude_cost_usd=None, execution_ms=0,
                                   price_table="bench")
        await ws.write_message(codec.encode(m.TaskComplete(task_id=task_id, generation=gen, result=result)))
        while True:  # wait for the hub's answer so every frame has been read
            raw = await ws.read_message()
            if raw is None or json.loads(raw).get("status") == "complete":
                break
        ws.close()
        return seq

    async def main() -> None:
        ready = [asyncio.Event() for _ in tokens]
        go = asyncio.Event()
        runs = [asyncio.ensure_future(sidecar(a, t, r, go)) for (a, t), r in zip(tokens.items(), ready)]
        for r in ready:
            await r.wait()
        print(json.dumps({"identified": len(tokens)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # tasks are assigned: go
        go.set()
        cpu0 = time.process_time()
        sent = await asyncio.gather(*runs)
        print(json.dumps({"sent": sum(sent), "cpu_s": time.process_time() - cpu0}), flush=True)

    asyncio.run(main())


# --------------------------------------------------------------------------- dashboards (this process)


class _Item(msgspec.Struct):
    """The fields of an ``events`` item the dashboards look at (decoding into these skips the rest)."""

    kind: str
    task_id: str = ""
    seq: int = -1
    text: str = ""


class _Frame(msgspec.Struct):
    type: str
    data: list[_Item] = []
    count: int = 0


class Dashboard:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.received = 0
        self.dropped = 0
        self.out_of_order = 0
        self.done = asyncio.Event()
        self._last: dict[str, int] = {}

    async def run(self, url: str, admin: str, expected: list[int]) -> None:
        from tornado.websocket import websocket_connect

        ws = await websocket_connect(url.replace("http", "ws", 1) + f"/agentcom/ws/dashboard?token={admin}",
                                     max_message_size=64 << 20)
        decoder = msgspec.json.Decoder(_Frame)
        self.connected = True
        while True:
            raw = await ws.read_message()
            if raw is None:
                break
            now = time.time()
            try:
                frame = decoder.decode(raw)
            except msgspec.ValidationError:   # the snapshot (its data is an object) and other frames
                continue
            if frame.type == "dropped":
                self.dropped += frame.count
            elif frame.type == "events":
                for item in frame.data:
                    if item.kind != "execution_event":
                        continue
                    self.received += 1
                    self.latencies.append(now - float(item.text.split(" ", 1)[0]))
                    last = self._last.get(item.task_id, -1)
                    if item.seq != last + 1:
                        self.out_of_order += 1
                    self._last[item.task_id] = item.seq
            if expected and self.received + self.dropped >= expected[0]:
                self.done.set()
        ws.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(args: argparse.Namespace) -> int:
    from tornado.httpclient import AsyncHTTPClient

    load_before = os.getloadavg()[0]
    workdir = tempfile.mkdtemp(prefix="agentcom-fanout-")
    here = os.path.abspath(__file__)
    hub = subprocess.Popen([sys.executable, here, "--role", "hub", "--db", os.path.join(workdir, "hub.db"),
                            "--sidecars", str(args.sidecars), "--batch-ms", str(args.batch_ms),
                            *(["--dashboard-buffer", str(args.dashboard_buffer)] if args.dashboard_buffer else []),
                            *(["--profile"] if args.profile else [])],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(hub.stdout.readline())
    expected: list[int] = []
    dashboards = [Dashboard() for _ in range(args.dashboards)]
    readers = [asyncio.ensure_future(d.run(info["url"], info["admin"], expected)) for d in dashboards]
    side = subprocess.Popen([sys.executable, here, "--role", "sidecars", "--url", info["url"],
                             "--tokens", json.dumps(info["tokens"]), "--rate", str(args.rate),
                             "--seconds", str(args.seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, side.stdout.readline)         # all identified
    http = AsyncHTTPClient()
    for i in range(args.sidecars):
        await http.fetch(info["url"] + "/agentcom/api/tasks", method="POST",
                         headers={"Authorization": f"Bearer {info['admin']}"},
                         body=json.dumps({"description": f"bench stream {i}", "complexity_tier": "trivial",
                                          "metadata": {"shell_command": "true"}}))
    await asyncio.sleep(0.5)                                        # assignments and acceptances settle
    for d in dashboards:
        d.latencies.clear()
    started, cpu0 = time.perf_counter(), time.process_time()
    side.stdin.write("go\n")
    side.stdin.flush()
    result = json.loads(await loop.run_in_executor(None, side.stdout.readline))
    send_s = time.perf_counter() - started
    expected.append(result["sent"])
    for d in dashboards:
        if d.received + d.dropped >= result["sent"]:
            d.done.set()
    try:
        await asyncio.wait_for(asyncio.gather(*(d.done.wait() for d in dashboards)), 30)
    except asyncio.TimeoutError:
        pass
    total_s, dash_cpu = time.perf_counter() - started, time.process_time() - cpu0
    hub.stdin.write("stop\n")
    hub.stdin.flush()
    hub_stats = json.loads(await loop.run_in_executor(None, hub.stdout.readline))
    for r in readers:
        r.cancel()
    hub.wait(10)
    side.wait(10)

    latencies = [x for d in dashboards for x in d.latencies]
    delivered = sum(d.received for d in dashboards)
    sent = result["sent"]
    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    print(f"sidecars {args.sidecars}, dashboards {args.dashboards}, target {args.rate:,} events/s for {args.seconds:g} s,"
          f" batch {args.batch_ms} ms, dashboard buffer {hub_stats['buffer']:,}")
    print(f"sent       {sent:>10,} events in {send_s:6.2f} s = {sent / send_s:>9,.0f} events/s into the hub")
    print(f"delivered  {delivered:>10,} events in {total_s:6.2f} s = {delivered / total_s:>9,.0f} events/s out"
          f" ({delivered / max(1, sent * args.dashboards):.1%} of {sent * args.dashboards:,})")
    print(f"latency    p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   max {max(latencies, default=0) * 1000:6.1f} ms")
    print(f"dropped    {sum(d.dropped for d in dashboards):,} (hub counted {hub_stats['dropped']:,}),"
          f" out of order {sum(d.out_of_order for d in dashboards):,}")
    print(f"cpu        hub {hub_stats['cpu_s']:.2f} s, sidecars {result['cpu_s']:.2f} s, dashboards {dash_cpu:.2f} s")
    print(f"load       1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
          f" ({os.cpu_count()} CPUs; the three processes share them with anything else running)")
    out_of_order = sum(d.out_of_order for d in dashboards)
    complete = sent > 0 and delivered == sent * args.dashboards and out_of_order == 0
    print("delivery   complete: every event reached every dashboard, in order" if complete else
          "delivery   INCOMPLETE: events were lost, dropped or out of order")
    target = sent / send_s >= 0.95 * args.rate and p99 < 250
    print(f"target     {'met' if target else 'NOT met'} ({args.rate:,} events/s in, p99 under 250 ms)")
    return 0 if complete and (target or args.no_target) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sidecars", type=int, default=8)
    parser.add_argument("--dashboards", type=int, default=10)
    parser.add_argument("--rate", type=int, default=10_000, help="execution events per second, all sidecars together")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-ms", type=int, default=100, help="the hub's batch_interval_ms")
    parser.add_argument("--dashboard-buffer", type=int, help="the hub's dashboard_buffer (default: the hub's default)")
    parser.add_argument("--no-target", action="store_true",
                        help="exit 0 on complete delivery alone; the rate and latency target is printed, not enforced")
    parser.add_argument("--profile", action="store_true", help="cProfile the hub process; its profile goes to stderr")
    parser.add_argument("--role", choices=("bench", "hub", "sidecars"), default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "hub":
        serve(args.db, args.sidecars, args.batch_ms, args.dashboard_buffer, args.profile)
        return 0
    if args.role == "sidecars":
        drive(args.url, json.loads(args.tokens), args.rate, args.seconds)
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
