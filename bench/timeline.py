"""Where a Session's time to usable goes: N Sessions at once against one traced operator.

    .venv/bin/python -m bench.timeline --n 100

Starts a control plane, the simulator (zero latency) and one operator with
`SKAHA_OPERATOR_TRACE` (runtime/trace.py), creates N Sessions at once, and follows each from its
create (this client's clock) through its parts' watch events, steps, Kubernetes requests and Skaha
calls (the operator's trace, same machine, same wall clock) to the moment this client sees it
usable. Prints the median of each segment of the happy path and the timeline of the median
Session. The segments follow the chain of the happy path:

  A  create -> the operator receives the Session (watch delivery)
  B  -> its first step starts (kopf's queue and dispatch)
  C  the first Session step (finalizer, the parts' creates, status)
  D  -> the Compute's launch step starts (the image check, events and wake-ups in between)
  E  the launch step (marker write, POST, [a first look at the session], id write)
  F  -> the step that sees Running starts (the first-poll delay; 0 when the launch step saw it)
  G  that step (GET, the Running write)
  H  -> the Session step that writes usable starts (watch delivery, wake-up, queue)
  I  that Session step (its status write)
  J  -> this client sees the Session usable (watch delivery)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, cast

from kubernetes import client

from bench.happy_path import api_client, session
from bench.kapi import KubeApi, follow
from bench.runs import OPERATOR_ARGS, USABLE, prepare_namespace, wait_platform
from bench.scale import conditions, simulator
from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.kit import install_crds, operator_process

SEGMENTS = {
    "A": "create -> operator receives the Session (watch delivery)",
    "B": "-> first Session step starts (kopf queue, dispatch)",
    "C": "first Session step up to the Compute's create (finalizer, creates)",
    "D": "-> Compute launch step starts (image check, events, wake-ups)",
    "E": "launch step (marker write, POST, [first look], id write)",
    "F": "-> step that sees Running starts (first-poll delay; 0: the launch step saw it)",
    "G": "that step (GET, Running write)",
    "H": "-> Session step writing usable starts (delivery, wake-up, queue)",
    "I": "that Session step",
    "J": "-> client sees usable (watch delivery)",
}
STATUS_WRITE = "patch_namespaced_custom_object_status"
CREATE = "create_namespaced_custom_object"


async def create_all(
    cp: ControlPlane,
    ns: str,
    n: int,
    timeout: float,  # noqa: ASYNC109 (bounds only the wait for usable; a timeout is reported)
) -> dict[str, list[float]]:
    """Create N Sessions at once; name -> [created, usable] (wall clock, as the trace)."""
    api = KubeApi(cp)
    out: dict[str, list[float]] = {}
    done = asyncio.Event()
    rv = (await api.list("sessions", ns))["metadata"]["resourceVersion"]

    def seen(obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name")
        got = out.get(name or "")
        if got and len(got) == 1 and (obj.get("status") or {}).get("phase") in USABLE:
            got.append(time.time())
            if sum(len(v) == 2 for v in out.values()) >= n:
                done.set()

    async def watch() -> None:
        await follow(api, "sessions", ns, rv, seen)

    async def one(i: int) -> None:
        out[f"s{i}"] = [time.time()]
        await api.create("sessions", ns, session(f"s{i}"))

    async def watch_logged() -> None:
        try:
            await watch()
        except Exception as exc:
            sys.stderr.write(f"the Session watch failed: {exc!r}\n")
            raise

    watcher = asyncio.create_task(watch_logged())
    try:
        await asyncio.gather(*(one(i) for i in range(n)))
        with contextlib.suppress(TimeoutError):  # reported: fewer usable than created
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await api.aclose()
    return out


def dump_objects(cp: ControlPlane, ns: str) -> dict[str, list[dict[str, Any]]]:
    """Every Session, Compute and DockerContainer of the namespace as the API server has them."""
    with api_client(cp) as api:
        custom = client.CustomObjectsApi(api)
        return {
            plural: cast(
                dict[str, Any], custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural)
            )["items"]
            for plural in ("sessions", "computes", "dockercontainers")
        }


def load(path: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Trace records by (plural, name), in time order."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        by[(rec.get("p", ""), rec.get("n", ""))].append(rec)
    for recs in by.values():
        recs.sort(key=lambda r: r.get("t0", r["t"]))
    return by


def _step_with(steps: list[dict[str, Any]], inner: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in steps if s["t0"] <= inner["t0"] and inner["t"] <= s["t"])


def segments(
    by: dict[tuple[str, str], list[dict[str, Any]]], name: str, created: float, usable: float
) -> dict[str, float]:
    """The happy path's segments of one Session, in seconds."""
    s_recs, c_recs = by[("sessions", name)], by[("computes", f"{name}-compute")]
    s_steps = [r for r in s_recs if r["k"] == "step"]
    c_steps = [r for r in c_recs if r["k"] == "step"]
    s_event = next(r for r in s_recs if r["k"] == "event")
    first = s_steps[0]
    # the Compute, created last
    made = [r for r in s_recs if r["k"] == "kube" and r["m"] == CREATE][-1]
    post = next(r for r in c_recs if r["k"] == "skaha" and r["m"] == "POST")
    launch = _step_with(c_steps, post)
    running_event = next(r for r in c_recs if r["k"] == "event" and r.get("phase") == "Running")
    running_write = [
        r for r in c_recs
        if r["k"] == "kube" and r["m"] == STATUS_WRITE and r["t"] <= running_event["t"]
    ][-1]  # fmt: skip
    poll = _step_with(c_steps, running_write)
    usable_event = next(r for r in s_recs if r["k"] == "event" and r.get("phase") in USABLE)
    usable_write = [
        r for r in s_recs
        if r["k"] == "kube" and r["m"] == STATUS_WRITE and r["t"] <= usable_event["t"]
    ][-1]  # fmt: skip
    last = _step_with(s_steps, usable_write)
    if poll is launch:  # the launch step's own first look saw it Running
        return {
            "A": s_event["t"] - created, "B": first["t0"] - s_event["t"],
            "C": made["t"] - first["t0"], "D": launch["t0"] - made["t"],
            "E": launch["t"] - launch["t0"], "F": 0.0, "G": 0.0,
            "H": last["t0"] - launch["t"], "I": last["t"] - last["t0"], "J": usable - last["t"],
        }  # fmt: skip
    return {
        "A": s_event["t"] - created,
        "B": first["t0"] - s_event["t"],
        "C": made["t"] - first["t0"],
        "D": launch["t0"] - made["t"],
        "E": launch["t"] - launch["t0"],
        "F": poll["t0"] - launch["t"],
        "G": poll["t"] - poll["t0"],
        "H": last["t0"] - poll["t"],
        "I": last["t"] - last["t0"],
        "J": usable - last["t"],
    }


def timeline(by: dict[tuple[str, str], list[dict[str, Any]]], name: str, created: float) -> str:
    """Every record of one Session's family, relative to its create, one per line."""
    keys = [("sessions", name), ("dockercontainers", f"{name}-executable"),
            ("computes", f"{name}-compute")]  # fmt: skip
    recs = sorted((r for k in keys for r in by[k]), key=lambda r: r.get("t0", r["t"]))
    lines = []
    for r in recs:
        start = r.get("t0", r["t"]) - created
        took = f" ({1000 * (r['t'] - r['t0']):.0f} ms)" if "t0" in r else ""
        what = {
            "event": lambda r: (
                f"watch event {r.get('type')} phase={r.get('phase')} reason={r.get('reason')}"
            ),
            "fire": lambda r: f"wake-up fires ({1000 * r['late']:.0f} ms late)",
            "step": lambda r: f"step (next in {r.get('next')})",
            "kube": lambda r: f"  API {r['m']}",
            "skaha": lambda r: f"  Skaha {r['m']} {r['r']}",
        }[r["k"]](r)
        lines.append(f"{1000 * start:8.0f} ms  {r['p'][:-1]:<15} {what}{took}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run, trace, analyse, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep", type=Path, default=None, help="copy the trace here")
    parser.add_argument("--operator-args", default="", help="extra operator arguments")
    parser.add_argument("--analyse", type=Path, default=None, help="a --keep file: analyse only")
    args = parser.parse_args(argv)
    if args.analyse:
        saved = json.loads(args.analyse.with_suffix(".times.json").read_text())
        return report(load(args.analyse), saved["times"], saved["n"], saved["note"])
    note = conditions()
    with tempfile.TemporaryDirectory() as tmp, ControlPlane() as cp, simulator(Path(tmp)) as sim:
        workdir = Path(tmp)
        trace = workdir / "trace.jsonl"
        with api_client(cp) as api:
            install_crds(api, sorted(Path("crds").glob("*.yaml")))
        ns = "timeline"
        prepare_namespace(cp, ns, sim)
        os.environ["SKAHA_OPERATOR_TRACE"] = str(trace)
        try:
            with operator_process(cp, workdir / "operator.log", *OPERATOR_ARGS, "-n", ns,
                                  *args.operator_args.split()):  # fmt: skip
                wait_platform(cp, ns)
                time.sleep(1.0)
                times = asyncio.run(create_all(cp, ns, args.n, args.timeout))
                time.sleep(2.0)
                if args.keep:
                    # Real bodies (managedFields included), for bench/memory.py.
                    bodies = dump_objects(cp, ns)
                    args.keep.parent.mkdir(parents=True, exist_ok=True)
                    args.keep.with_suffix(".objects.json").write_text(json.dumps(bodies))
        finally:
            del os.environ["SKAHA_OPERATOR_TRACE"]
        if args.keep:
            args.keep.parent.mkdir(parents=True, exist_ok=True)
            args.keep.write_bytes(trace.read_bytes())
            saved = {"times": times, "n": args.n, "note": note}
            args.keep.with_suffix(".times.json").write_text(json.dumps(saved))
            (args.keep.parent / "operator.log").write_bytes((workdir / "operator.log").read_bytes())
        by = load(trace)
    return report(by, times, args.n, note)


def report(
    by: dict[tuple[str, str], list[dict[str, Any]]],
    times: dict[str, list[float]],
    n: int,
    note: str,
) -> int:
    """Print the medians per segment and the median Session's timeline."""
    per: dict[str, list[float]] = defaultdict(list)
    totals: dict[str, float] = {}
    for name, (created, usable) in ((k, v) for k, v in times.items() if len(v) == 2):
        try:
            segs = segments(by, name, created, usable)
        except StopIteration:
            continue  # off the happy path (a conflict re-read, a retry): not in the medians
        totals[name] = usable - created
        for k, v in segs.items():
            per[k].append(v)
    median_name = sorted(totals, key=totals.__getitem__)[len(totals) // 2]
    out = [f"N = {n} Sessions at once; {note}.",
           f"{len(totals)} of {len(times)} Sessions followed the happy path; median time to "
           f"usable {statistics.median(totals.values()):.2f} s.", "",
           "| segment | median s | p90 s |", "|---|---:|---:|"]  # fmt: skip
    for k, label in SEGMENTS.items():
        values = sorted(per[k])
        p90 = values[int(0.9 * (len(values) - 1))] if values else float("nan")
        out.append(f"| {k} {label} | {statistics.median(values):.3f} | {p90:.3f} |")
    out += ["", f"Timeline of the median Session ({median_name}, "
            f"{totals[median_name]:.2f} s):", "", "```",
            timeline(by, median_name, times[median_name][0]), "```"]  # fmt: skip
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
