"""What running a headless session as a container costs: POST to Completed, container vs emulation.

Each mode launches `cmd=true` sessions one after another (and a batch of `--parallel` at once) on
an in-process simulator with no Pending delay, and reports the wall time from the POST until the
session reads Completed. The emulation's time is the floor (HTTP and polling only).

    .venv/bin/python -m bench.job_containers --runs 20 --parallel 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from skaha_operator.simulator import Simulator, SimulatorConfig

IMAGE = "images.canfar.net/skaha/terminal:1.1.2"
HEADERS = {"Authorization": "Bearer tok-alice"}
POLL_S = 0.02
DEADLINE_S = 120.0


async def one(http: aiohttp.ClientSession, base: str, name: str) -> float:
    """Seconds from the POST until the session is Completed."""
    started = time.monotonic()
    data = {"name": name, "image": IMAGE, "cmd": "true"}
    async with http.post(f"{base}/skaha/v1/session", headers=HEADERS, data=data) as reply:
        sid = (await reply.text()).strip()
    while time.monotonic() - started < DEADLINE_S:
        async with http.get(f"{base}/skaha/v1/session/{sid}", headers=HEADERS) as reply:
            status = (await reply.json())["status"]
        if status in ("Completed", "Failed"):
            assert status == "Completed", sid
            return time.monotonic() - started
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{sid} not finished after {DEADLINE_S} s")


async def measure(mode: str, runs: int, parallel: int) -> dict[str, float]:
    sim = Simulator(SimulatorConfig(job_mode=mode, pending_s=0, run_s=0))
    try:
        async with sim.serve() as running, aiohttp.ClientSession() as http:
            await one(http, running.base_url, "warm-up")
            serial = [await one(http, running.base_url, f"s{i}") for i in range(runs)]
            started = time.monotonic()
            await asyncio.gather(*(one(http, running.base_url, f"p{i}") for i in range(parallel)))
            batch = time.monotonic() - started
    finally:
        sim.close()
    return {
        "median": statistics.median(serial),
        "p95": sorted(serial)[max(0, round(0.95 * len(serial)) - 1)],
        "batch": batch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    results = {mode: asyncio.run(measure(mode, args.runs, args.parallel))
               for mode in ("emulate", "container")}  # fmt: skip
    lines = [
        f"| mode | POST→Completed median | p95 | {args.parallel} at once, all Completed |",
        "| --- | --- | --- | --- |",
    ]
    for mode, r in results.items():
        lines.append(f"| {mode} | {r['median']:.2f} s | {r['p95']:.2f} s | {r['batch']:.2f} s |")
    added = results["container"]["median"] - results["emulate"]["median"]
    lines.append(f"\na container adds {added:.2f} s (median) to a job that does nothing")
    print("\n".join(lines))  # noqa: T201


if __name__ == "__main__":
    main()
