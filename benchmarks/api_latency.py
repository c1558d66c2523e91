"""API latency under load: xref lookup, customer read and real-time match against a resolved store.

The store comes from the speed suite's work folder (``bench_out/work/speed-<size>``: generated with the
project's generator, ingested, matched, golden records built); it is made when missing. The server is
``mdm serve`` in its own process; the load comes from this process with an async httpx client, open
loop: requests start on a fixed schedule whatever the answers do, and latency is measured from each
request's scheduled start, so a slow server cannot hide its queueing (no coordinated omission).
``wrk`` (C, far lighter than the Python client) adds closed-loop runs and paced runs near 1,000 req/s.

A subset of endpoints: ``python -m benchmarks.api_latency --size 100k --endpoints xref,customer``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.common import OUT, SIZES

#: endpoint -> (requests per second, seconds) of the open-loop phase.
SCHEDULE = {"xref": (1000, 5.0), "customer": (1000, 5.0), "match": (20, 20.0)}
SMOKE_SCHEDULE = {"xref": (50, 1.0), "customer": (50, 1.0), "match": (5, 1.0)}
TARGETS_MS = {"xref": 10.0, "customer": 10.0, "match": 50.0}
SAMPLE = 2000
#: A request still unanswered after this long counts as failed (status 0) and its latency as this.
REQUEST_TIMEOUT = 5.0
#: Closed-loop probe of the most each endpoint can serve: concurrent callers, seconds.
PROBE = (8, 5.0)
#: API keys the load is spread over (the policy limits each key to 200 req/s; 8 keys allow 1,600).
KEYS = 8
#: Keep-alive connections of the raw GET client.
RAW_CONNECTIONS = 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def resolved_store(size: str, smoke: bool) -> Path:
    """A resolved store of the speed suite (made when missing) with its model beside it, copied."""
    from benchmarks import speed

    label = "smoke" if smoke else size
    work = OUT / "work" / f"speed-{label}"
    if not (work / "bench.duckdb").exists() or not (work / "model.json").exists():
        records = speed.SMOKE_RECORDS if smoke else SIZES[size]
        speed.run_size(records, label, mem_gb=12.0, timeout_s=1.0, with_splink=False)
    target = OUT / "work" / f"api-{label}" / "api.duckdb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "bench.duckdb", target)
    target.with_name(f"{target.name}.wal").unlink(
        missing_ok=True
    )  # a crashed server's log is not this copy's
    shutil.rmtree(target.with_name(f"{target.name}.audit-journal"), ignore_errors=True)
    shutil.copy(work / "model.json", target.with_name(f"{target.name}.person.model.json"))
    return target


def workload(db: Path, seed: int = 5) -> dict[str, list[Any]]:
    """Record keys, customer IDs and match bodies (raw fields of stored records), sampled."""
    from mdm.schema import RAW_FIELDS
    from mdm.store import Store

    fields = [f for f in RAW_FIELDS if f not in ("source", "source_key")]
    cols = ", ".join(f'r."{f}"' for f in fields)
    with Store(db) as store:
        rows = store.query(
            f"""SELECT x.source, x.source_key, x.customer_id, {cols} FROM xref x
            JOIN current_records r ON r.rid = x.rid WHERE x.valid_to_run IS NULL
            USING SAMPLE {SAMPLE} ROWS (reservoir, {seed})"""
        ).to_dicts()
    bodies = [{"fields": {f: r[f] for f in fields if r[f] not in (None, "", [])}, "limit": 5} for r in rows]
    return {
        "xref": [f"/v1/xref/{r['source']}/{r['source_key']}" for r in rows],
        "customer": [f"/v1/customers/{r['customer_id']}" for r in rows],
        "match": bodies,
    }


def api_keys(db: Path, n: int = KEYS) -> list[str]:
    """System keys made in the store before the server opens it (the load rotates over them)."""
    from api.app import open_api_store
    from api.auth import create_key
    from api.policy import ROLES

    with open_api_store(db) as store:
        return [create_key(store, f"bench{i}", "system", "benchmark", ROLES).token for i in range(n)]


class RawClient:
    """A minimal keep-alive HTTP/1.1 GET client over asyncio streams: far less CPU per request than
    httpx, whose pool slows down with thousands of waiting requests (the load shares the 2 cores)."""

    def __init__(self, port: int, tokens: list[str]) -> None:
        self._port = port
        self._tokens = tokens
        self._n = 0
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def open(self, connections: int = RAW_CONNECTIONS) -> None:
        """Open the connections."""
        for _ in range(connections):
            self._idle.put_nowait(await asyncio.open_connection("127.0.0.1", self._port))

    async def close(self) -> None:
        """Close every idle connection."""
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()

    async def get(self, path: str) -> int:
        """One GET on a free connection; its status, or 0 on a failure or timeout."""
        reader, writer = await self._idle.get()
        self._n += 1
        token = self._tokens[self._n % len(self._tokens)]
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await asyncio.wait_for(reader.readexactly(length), REQUEST_TIMEOUT)
            status = int(head[9:12])
        except (TimeoutError, OSError, asyncio.IncompleteReadError, StopIteration, ValueError):
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
            status = 0
        self._idle.put_nowait((reader, writer))
        return status


def start_server(db: Path, port: int, token: str) -> subprocess.Popen[bytes]:
    """``mdm serve`` in its own process; returns once /livez answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mdm", "serve", "--db", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            headers = {"Authorization": f"Bearer {token}"}
            if httpx.get(f"http://127.0.0.1:{port}/livez", headers=headers, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start")


async def call(client: httpx.AsyncClient | RawClient, endpoint: str, item: Any) -> int:
    """One request; its status, or 0 when it failed or timed out."""
    if isinstance(client, RawClient):
        return await client.get(item)
    try:
        if endpoint == "match":
            r = await client.post("/v1/match", json=item)
        else:
            r = await client.get(item)
    except httpx.HTTPError:
        return 0
    return r.status_code


async def closed_loop(
    client: httpx.AsyncClient | RawClient, endpoint: str, items: list[Any]
) -> dict[str, Any]:
    """The most the server answers: ``PROBE`` callers, each sending its next request on an answer."""
    callers, seconds = PROBE
    rng = random.Random(3)
    done = 0
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call(client, endpoint, items[rng.randrange(len(items))])
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return {
        "endpoint": endpoint,
        "callers": callers,
        "max_rps": round(done / (time.perf_counter() - start), 1),
    }


async def open_loop(
    client: httpx.AsyncClient | RawClient, endpoint: str, items: list[Any], rate: int, seconds: float
) -> dict[str, Any]:
    """Send ``rate`` requests a second for ``seconds``; latency from each request's scheduled start."""
    n = int(rate * seconds)
    latencies = np.zeros(n)
    statuses: dict[int, int] = {}
    rng = random.Random(7)
    start = time.perf_counter() + 0.2

    async def one(i: int, due: float) -> None:
        code = await call(client, endpoint, items[rng.randrange(len(items))])
        latencies[i] = time.perf_counter() - due
        statuses[code] = statuses.get(code, 0) + 1

    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    ms = latencies * 1000
    return {
        "endpoint": endpoint,
        "offered_rps": rate,
        "achieved_rps": round(n / elapsed, 1),
        "requests": n,
        "statuses": statuses,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "target_p99_ms": TARGETS_MS[endpoint],
        "meets_target": bool(np.percentile(ms, 99) < TARGETS_MS[endpoint]),
    }


async def drive(
    port: int, tokens: list[str], work: dict[str, list[Any]], schedule: dict[str, tuple[int, float]]
) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    raw = RawClient(port, tokens)
    await raw.open()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=REQUEST_TIMEOUT
    ) as client:
        if "match" in schedule:
            warm = await client.post("/v1/match", json=work["match"][0], timeout=600)  # builds the index
            if warm.status_code != 200:
                raise RuntimeError(f"match warm-up failed: {warm.status_code} {warm.text[:300]}")
        results = []
        for ep, (rate, secs) in schedule.items():
            via: httpx.AsyncClient | RawClient = client if ep == "match" else raw
            probe = await closed_loop(via, ep, work[ep])
            await asyncio.sleep(1.0)
            results.append({**await open_loop(via, ep, work[ep], rate, secs), "max_rps": probe["max_rps"]})
            await asyncio.sleep(1.0)
        await raw.close()
        return results


WRK_SCRIPT = """
local paths = {%s}
local tokens = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1], {["Authorization"] = "Bearer " .. tokens[(n %% #tokens) + 1]})
end
"""
#: Appended to WRK_SCRIPT for a paced run: each connection waits this many ms between requests.
WRK_PACE = """
delay = function()
  return %d
end
"""
#: Paced wrk runs: connections, each sending one request per this many ms (about 1,000 req/s in all).
PACED = (20, 20)


def _ms(text: str) -> float:
    """A wrk duration (``812.00us``, ``3.21ms``, ``1.02s``) in milliseconds."""
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def wrk_run(
    port: int,
    tokens: list[str],
    paths: list[str],
    connections: int,
    seconds: int,
    folder: Path,
    pace_ms: int | None = None,
) -> dict[str, Any]:
    """Load from ``wrk`` (C, one thread): throughput and latency percentiles for GET paths; closed loop,
    or with ``pace_ms`` each connection pausing that long between requests (a steady offered rate)."""
    script = folder / "paths.lua"
    text = WRK_SCRIPT % (", ".join(f'"{p}"' for p in paths), ", ".join(f'"{t}"' for t in tokens))
    script.write_text(text + (WRK_PACE % pace_ms if pace_ms else ""))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, Any] = {"connections": connections, "seconds": seconds, "pace_ms": pace_ms}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            figures["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            figures[f"p{parts[0].rstrip('%')}_ms"] = round(_ms(parts[1]), 2)
        elif "Non-2xx" in line:
            figures["non_2xx"] = int(parts[-1])
    return figures


def run(
    size: str = "100k", smoke: bool = False, endpoints: tuple[str, ...] = ("xref", "customer", "match")
) -> dict[str, Any]:
    """The API latency suite at one size, for ``endpoints`` (any of xref, customer, match)."""
    db = resolved_store(size, smoke)
    work = workload(db)
    tokens = api_keys(db)
    port = free_port()
    t0 = time.perf_counter()
    server = start_server(db, port, tokens[0])
    startup = time.perf_counter() - t0
    wrk: dict[str, Any] = {}
    try:
        schedule = {
            ep: plan for ep, plan in (SMOKE_SCHEDULE if smoke else SCHEDULE).items() if ep in endpoints
        }
        results = asyncio.run(drive(port, tokens, work, schedule))
        if shutil.which("wrk"):
            seconds = 2 if smoke else 8
            for endpoint in [ep for ep in ("xref", "customer") if ep in endpoints]:
                wrk[endpoint] = [
                    wrk_run(port, tokens, work[endpoint], c, seconds, db.parent) for c in (1, 8, 32)
                ] + [wrk_run(port, tokens, work[endpoint], PACED[0], seconds, db.parent, pace_ms=PACED[1])]
    finally:
        server.terminate()
        server.wait(timeout=60)
    customers = len(set(work["customer"]))
    return {
        "size": "smoke" if smoke else size,
        "server_startup_seconds": round(startup, 1),
        "sampled_customers": customers,
        "results": results,
        "wrk": wrk or "wrk not installed (apt-get install wrk)",
        "load_generator": "GET: raw asyncio keep-alive client, match: httpx.AsyncClient; open loop, "
        f"{KEYS} keys in rotation, same machine (2 cores shared with the server); wrk closed loop and paced",
    }


def main() -> None:
    """``python -m benchmarks.api_latency [--size 100k|1m] [--smoke] [--endpoints xref,customer]``: JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="100k")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--endpoints", default="xref,customer,match")
    args = parser.parse_args()
    chosen = tuple(e for e in args.endpoints.split(",") if e)
    unknown = set(chosen) - set(SCHEDULE)
    if unknown:
        raise SystemExit(f"unknown endpoints: {', '.join(sorted(unknown))}; known: {', '.join(SCHEDULE)}")
    print(json.dumps(run(args.size, smoke=args.smoke, endpoints=chosen), indent=2, default=str))


if __name__ == "__main__":
    main()
