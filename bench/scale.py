"""`make bench`: N Sessions at once (N = 100, 500, 1000) against the operator, the floor and a bare
kopf operator, in one run on one local control plane and one simulator process (zero latency);
then two instances on two namespaces, and two replicas sharing one namespace by shard Leases.
Prints the tables and writes them into docs/performance.md between the bench markers.

    .venv/bin/python -m bench.scale --sizes 100,500,1000 --two 1000 --replicas 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.happy_path import api_client
from bench.report import render, write_section
from bench.runs import Result, run_bare, run_floor, run_operator
from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.kit import install_crds
from skaha_operator.controlplane.processes import free_port

SIM_CONFIG = {
    "tokens": {"tok-alice": "alice"},
    # The operator's cost is measured: headless sessions stay emulated, never 1000 containers.
    "job_mode": "emulate",
    "pending_s": 0.0,
    "run_s": 3600,
    "max_sessions": 1_000_000,
}


@contextmanager
def simulator(workdir: Path) -> Iterator[str]:
    """The simulator as its own process (so it does not share the client's interpreter)."""
    port = free_port()
    cfg = workdir / "sim.json"
    cfg.write_text(json.dumps(SIM_CONFIG))
    argv = [sys.executable, "-m", "skaha_operator", "simulator", "--port", str(port),
            "--config", str(cfg)]  # fmt: skip
    with (workdir / "sim.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/_sim/clock", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def conditions() -> str:
    """Load and machine, stated next to the figures."""
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs, load average before the run {load[0]:.2f} / {load[1]:.2f} / "
        f"{load[2]:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, print the tables and write them into the document."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,500,1000", help="comma-separated N")
    parser.add_argument("--two", type=int, default=1000, help="N for two instances (0: skip)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1000,
        help="N for two replicas sharing one namespace by shard Leases (0: skip)",
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare kopf baseline")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--idle", type=float, default=0, help="seconds of steady state measured after each run"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/performance.md"))
    parser.add_argument("--json", type=Path, default=None, help="also dump raw results here")
    parser.add_argument(
        "--logs", type=Path, default=None, help="keep the operators' and simulator's logs here"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    note = conditions()
    results: list[Result] = []
    with ExitStack() as stack:
        workdir = args.logs or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        cp = stack.enter_context(ControlPlane())
        sim = stack.enter_context(simulator(workdir))
        with api_client(cp) as api:
            install_crds(api, sorted(Path("crds").glob("*.yaml")))
        for n in sizes:
            if not args.no_floor:
                results.append(run_floor(cp, sim, f"floor-{n}", n))
                _progress(results[-1])
            results.append(
                run_operator(cp, sim, [f"op-{n}"], n, workdir, args.timeout, idle=args.idle)
            )
            _progress(results[-1])
            if not args.no_bare:
                results.append(run_bare(cp, sim, f"bare-{n}", n, workdir, args.timeout))
                _progress(results[-1])
        if args.two:
            two = [f"two-{args.two}-a", f"two-{args.two}-b"]
            results.append(run_operator(cp, sim, two, args.two, workdir, args.timeout, False))
            _progress(results[-1])
        if args.replicas:
            results.append(
                run_operator(
                    cp,
                    sim,
                    [f"replicas-{args.replicas}"],
                    args.replicas,
                    workdir,
                    args.timeout,
                    False,
                    replicas=2,
                )
            )
            _progress(results[-1])
    text = render(results, note)
    sys.stdout.write(text)
    write_section(args.out, text)
    if args.json:
        args.json.write_text(json.dumps([_raw(r) for r in results], indent=1))
    return 0


def _progress(r: Result) -> None:
    sys.stderr.write(
        f"{r.who} N={r.n}: {len(r.times)} usable in {r.elapsed:.1f}s ({r.rate:.1f}/s)\n"
    )


def _raw(r: Result) -> dict[str, object]:
    return {
        "who": r.who, "n": r.n, "elapsed": r.elapsed, "usable": len(r.times),
        "api": {f"{v} {res}": c for (v, res), c in r.api.delta.items()},
        "calls": dict(r.calls), "cpu_s": r.cpu_s, "peak_rss_kib": r.peak_rss_kib,
        "rss_growth_kib": r.rss_growth_kib, "resume_s": r.resume_s,
        "resume_writes": r.resume_writes, "resume_rss_kib": r.resume_rss_kib,
        "resume_looks": r.resume_looks,
        "shares": r.shares,
        "lease_writes_per_s": r.lease_writes_per_s, "server_cpu_s": r.server_cpu_s,
        "server_memory": r.server_memory,
    }  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
