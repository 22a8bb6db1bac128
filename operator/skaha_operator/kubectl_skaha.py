"""`kubectl skaha`: a kubectl plugin for scientists who run Sessions.

    kubectl skaha sessions [-A]          name, phase, reason, connect URL, time left
    kubectl skaha logs SESSION           the Skaha session's logs
    kubectl skaha events SESSION         Kubernetes Events of the Session and its parts
                                         (--skaha adds Skaha's own event view)
    kubectl skaha open SESSION           print the connect URL (--browser opens it)
    kubectl skaha renew SESSION          renew the Skaha session now

It reads the Session and its Compute with the user's kubeconfig (KUBECONFIG, --kubeconfig,
--context, -n), and talks to Skaha as the platform does: with the token in the Secret the
SkahaPlatform names (and its CA bundle, if any), read with the user's own rights. A user who may
not read that Secret sees a plain refusal. The token is never printed: it stays a SecretStr
inside the platform clients, whose errors are scrubbed of it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
import webbrowser
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from kubernetes import client, config
from pydantic import SecretStr

from skaha_operator.domain.common import TERMINAL_SESSION_PHASES
from skaha_operator.domain.session import Session
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.platform.clients import PlatformClients, PlatformSettings
from skaha_operator.platform.errors import SkahaError
from skaha_operator.platform.wire import ApiVersion
from skaha_operator.reconcile.builders import part_refs
from skaha_operator.reconcile.timing import schedule_bounds

GROUP, VERSION = "skaha.broker.dev", "v1alpha1"
T = TypeVar("T")


class PluginError(Exception):
    """A refusal to show the user (one line, no trace)."""


@dataclass
class Kube:
    """The user's view of the cluster."""

    api: client.ApiClient
    namespace: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or self.namespace
        try:
            obj: Any = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, plural, name)
        except client.ApiException as exc:
            raise PluginError(_refusal(exc, f"{plural} {ns}/{name}")) from None
        return dict(obj)

    def find(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.get(plural, name, namespace)
        except PluginError:
            return None

    def list(self, plural: str, all_namespaces: bool) -> list[dict[str, Any]]:
        found: Any
        try:
            if all_namespaces:
                found = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
            else:
                found = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural
                )
        except client.ApiException as exc:
            raise PluginError(_refusal(exc, plural)) from None
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    def secret(self, namespace: str, name: str, key: str, why: str) -> str:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except client.ApiException as exc:
            raise PluginError(_refusal(exc, f"Secret {namespace}/{name} ({why})")) from None
        value = (secret.data or {}).get(key)
        if value is None:
            raise PluginError(f"Secret {namespace}/{name} ({why}) has no key {key!r}")
        return base64.b64decode(value).decode()


def _refusal(exc: client.ApiException, what: str) -> str:
    if exc.status == 404:
        return f"{what} not found"
    if exc.status == 403:
        return f"you may not read {what} (forbidden): ask your namespace admin"
    return f"cannot read {what}: HTTP {exc.status} {exc.reason}"


# -- reading a Session ------------------------------------------------------------------------


def _created(body: dict[str, Any]) -> datetime:
    text = str(body.get("metadata", {}).get("creationTimestamp") or "")
    if not text:
        return datetime.now(UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def compute_name(session: dict[str, Any]) -> str | None:
    """The name of the Session's Compute (a Session always makes its own, from its template)."""
    try:
        model = Session.model_validate(session)
    except ValueError:
        return None
    return next((r.name for r in part_refs(model) if r.kind == "Compute"), None)


def connect_url(session: dict[str, Any]) -> str | None:
    """The first connect URL the Session publishes (only while it is usable)."""
    connectors = (session.get("status") or {}).get("connectors") or []
    return str(connectors[0]["url"]) if connectors and connectors[0].get("url") else None


def time_left(session: dict[str, Any], compute: dict[str, Any] | None, now: datetime) -> str:
    """Until the end of the booking (start + duration), else Skaha's expiry; '-' when over."""
    phase = (session.get("status") or {}).get("phase")
    if phase in TERMINAL_SESSION_PHASES:
        return "-"
    end = None
    try:
        model = Session.model_validate(session)
        _, end, _ = schedule_bounds(model.spec.schedule, _created(session))
    except ValueError:
        pass
    if end is None and compute is not None:
        end = _parse_time((compute.get("status") or {}).get("expiryTime"))
    if end is None:
        return "-"
    return format_duration((end - now).total_seconds())


def format_duration(seconds: float) -> str:
    """`2h05m`, `4m10s`, `12s`; `expired` when not positive."""
    if seconds <= 0:
        return "expired"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"


def table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Columns padded like kubectl's."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        out.write("   ".join(cells).rstrip() + "\n")


# -- talking to Skaha ---------------------------------------------------------------------------


@dataclass
class Target:
    """The Skaha session behind a Session, and the platform it runs on."""

    namespace: str
    session: str
    skaha_id: str
    platform: SkahaPlatform


def target(kube: Kube, name: str) -> Target:
    """The Session's Skaha session id and platform; a plain refusal when there is none yet."""
    session = kube.get("sessions", name)
    ns = str(session["metadata"]["namespace"])
    cname = compute_name(session)
    compute = kube.find("computes", cname, ns) if cname else None
    launch = ((compute or {}).get("status") or {}).get("launch") or {}
    skaha_id = launch.get("id")
    if not skaha_id:
        status = session.get("status") or {}
        raise PluginError(
            f"Session {name} has no Skaha session yet (phase {status.get('phase', 'new')}"
            + (f": {status['reason']}" if status.get("reason") else "")
            + ")"
        )
    platform_ref = str((compute or {}).get("spec", {}).get("platformRef") or "")
    platform_ref = platform_ref or str(session["spec"]["platformRef"])
    platform = SkahaPlatform.model_validate(kube.get("skahaplatforms", platform_ref, ns))
    return Target(ns, name, str(skaha_id), platform)


def settings(kube: Kube, platform: SkahaPlatform) -> PlatformSettings:
    """The platform's URLs with the token (and CA bundle) read with the user's rights."""
    ns = str(platform.metadata["namespace"])
    name = str(platform.metadata["name"])
    spec = platform.spec
    ref = spec.token_secret_ref
    token = SecretStr(kube.secret(ns, ref.name, ref.key, f"the token of SkahaPlatform {name}"))
    ca_pem = None
    if spec.ca_bundle_secret_ref is not None:
        ca = spec.ca_bundle_secret_ref
        ca_pem = kube.secret(ns, ca.name, ca.key, f"the CA bundle of SkahaPlatform {name}")
    probed = platform.status.api_version if platform.status else None
    return PlatformSettings(
        skaha_url=spec.skaha.url,
        cavern_url=spec.cavern.url,
        token=token,
        api_version=ApiVersion(spec.skaha.api_version or probed or "v1"),
        ca_pem=ca_pem,
    )


def with_skaha(kube: Kube, t: Target, call: Callable[[PlatformClients], Awaitable[T]]) -> T:
    """Run one call against the platform's Skaha, closing the clients afterwards."""
    made = settings(kube, t.platform)

    async def run() -> T:
        clients = PlatformClients.create(made)
        try:
            return await call(clients)
        finally:
            await clients.aclose()

    try:
        return asyncio.run(run())
    except SkahaError as exc:  # already scrubbed of the token
        raise PluginError(f"Skaha session {t.skaha_id}: {exc}") from None


# -- commands -------------------------------------------------------------------------------


def cmd_sessions(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    sessions = kube.list("sessions", args.all_namespaces)
    computes = {
        (c["metadata"]["namespace"], c["metadata"]["name"]): c
        for c in kube.list("computes", args.all_namespaces)
    }
    now = datetime.now(UTC)
    head = ["NAME", "PHASE", "REASON", "URL", "TIME LEFT"]
    if args.all_namespaces:
        head.insert(0, "NAMESPACE")
    rows = [head]
    for s in sorted(sessions, key=lambda b: (b["metadata"]["namespace"], b["metadata"]["name"])):
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        status = s.get("status") or {}
        cname = compute_name(s)
        compute = computes.get((ns, cname)) if cname else None
        row = [
            name,
            str(status.get("phase") or "-"),
            str(status.get("reason") or "-"),
            connect_url(s) or "-",
            time_left(s, compute, now),
        ]
        rows.append([ns, *row] if args.all_namespaces else row)
    if len(rows) == 1:
        where = "any namespace" if args.all_namespaces else f"namespace {kube.namespace}"
        out.write(f"No Sessions in {where}.\n")
        return 0
    table(rows, out)
    return 0


def cmd_logs(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    t = target(kube, args.session)
    out.write(with_skaha(kube, t, lambda c: c.skaha.logs(t.skaha_id)))
    return 0


def cmd_events(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    session = kube.get("sessions", args.session)
    ns = str(session["metadata"]["namespace"])
    names = {("Session", args.session)}
    with contextlib.suppress(ValueError):
        names |= {(r.kind, r.name) for r in part_refs(Session.model_validate(session))}
    try:
        events = kube.core.list_namespaced_event(ns).items
    except client.ApiException as exc:
        raise PluginError(_refusal(exc, f"Events in {ns}")) from None
    mine = [e for e in events if (e.involved_object.kind, e.involved_object.name) in names]
    now = datetime.now(UTC)

    def when(e: Any) -> datetime:
        stamp = e.last_timestamp or e.event_time or e.first_timestamp
        return stamp if stamp is not None else datetime.min.replace(tzinfo=UTC)

    rows = [["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    for e in sorted(mine, key=when):
        stamp = when(e)
        age = format_duration((now - stamp).total_seconds()) if stamp.year > 1 else "-"
        obj = f"{e.involved_object.kind}/{e.involved_object.name}"
        rows.append([age, e.type or "-", e.reason or "-", obj, (e.message or "").strip()])
    if len(rows) == 1:
        out.write(f"No Events for Session {args.session} or its parts.\n")
    else:
        table(rows, out)
    if args.skaha:
        t = target(kube, args.session)
        out.write(f"\nSkaha events of session {t.skaha_id}:\n")
        out.write(with_skaha(kube, t, lambda c: c.skaha.events(t.skaha_id)))
    return 0


def cmd_open(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    session = kube.get("sessions", args.session)
    url = connect_url(session)
    if url is None:
        status = session.get("status") or {}
        raise PluginError(
            f"Session {args.session} has no connect URL (phase {status.get('phase', 'new')}"
            + (f": {status['reason']}" if status.get("reason") else "")
            + ")"
        )
    out.write(url + "\n")
    if args.browser and not webbrowser.open(url):
        raise PluginError("no browser could be started; open the URL above yourself")
    return 0


def cmd_renew(kube: Kube, args: argparse.Namespace, out: TextIO) -> int:
    t = target(kube, args.session)

    async def renew(c: PlatformClients) -> datetime | None:
        await c.skaha.renew(t.skaha_id)
        return (await c.skaha.get_session(t.skaha_id)).expiry_time

    expiry = with_skaha(kube, t, renew)
    until = f"; it now expires at {expiry.isoformat()}" if expiry else ""
    out.write(f"renewed Skaha session {t.skaha_id} of Session {args.session}{until}\n")
    return 0


COMMANDS: dict[str, Callable[[Kube, argparse.Namespace, TextIO], int]] = {
    "sessions": cmd_sessions,
    "logs": cmd_logs,
    "events": cmd_events,
    "open": cmd_open,
    "renew": cmd_renew,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl skaha",
        description="Your Skaha Sessions, as the skaha-operator runs them.",
    )
    p.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sessions", help="list Sessions: phase, reason, URL, time left")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    for name, text in (("logs", "the Skaha session's logs"), ("renew", "renew it now")):
        c = sub.add_parser(name, help=text)
        c.add_argument("session")
    e = sub.add_parser("events", help="Events of the Session and its parts")
    e.add_argument("session")
    e.add_argument("--skaha", action="store_true", help="also Skaha's own event view")
    o = sub.add_parser("open", help="print the connect URL")
    o.add_argument("session")
    o.add_argument("--browser", action="store_true", help="and open it in a browser")
    return p


def connect(args: argparse.Namespace) -> Kube:
    """The user's kubeconfig: its context's namespace unless -n says otherwise."""
    try:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig, context=args.context
        )
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig
        )
    except (config.ConfigException, OSError) as exc:
        raise PluginError(f"no usable kubeconfig: {exc}") from None
    if args.context:
        active = next((c for c in contexts if c["name"] == args.context), active)
    namespace = args.namespace or (active or {}).get("context", {}).get("namespace") or "default"
    return Kube(api, namespace)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of `kubectl-skaha` (kubectl finds it on PATH as the `skaha` plugin)."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    stream = out or sys.stdout
    if getattr(args, "all_namespaces", False) and args.namespace:
        args.namespace = None
    try:
        kube = connect(args)
        try:
            return COMMANDS[args.command](kube, args, stream)
        finally:
            kube.api.close()  # type: ignore[no-untyped-call]
    except PluginError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
