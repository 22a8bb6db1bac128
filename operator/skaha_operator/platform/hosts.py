"""Which hosts a SkahaPlatform may send the operator to: the `--allowed-hosts` policy.

A SkahaPlatform is written by whoever may edit objects in its namespace, but the requests it
causes leave from the operator's pod, with the operator's network position. Without a limit a
tenant could point Skaha, Cavern or Rucio at the cloud metadata endpoint (169.254.169.254), the
API server, a cluster-internal Service or a private range, and read the replies back from
status messages (a confused deputy, docs/threat-model.md).

The policy decides from what the URL says — the hostname or IP literal — and never resolves a
name: the answer is the same every time, testable without DNS, and the check costs nothing
(docs/threat-model.md §4 says what a name-based check cannot see and what covers it).

- No entries (the default): any *public* host is allowed; internal ones are refused: IP literals
  that are not globally routable (loopback, link-local, private, shared, reserved, multicast) and
  names that only make sense inside a cluster or a LAN (single labels such as `kubernetes`,
  `localhost`, `*.svc`, `*.cluster.local`, `*.local`, `*.internal`, ...).
- Entries: only hosts matching an entry are allowed. An entry is a hostname (`skaha.example.org`),
  a wildcard (`*.canfar.net`: any name below canfar.net, not canfar.net itself), an IP literal
  (`127.0.0.1`, `::1`), a CIDR range (`10.20.0.0/16`) or `*` (any public host).
- An internal host is allowed only when an entry names it explicitly: its exact name or address,
  a CIDR that lies inside an internal range, or a wildcard under an internal suffix
  (`*.svc.cluster.local`). `*` or `*.net` never let `localhost` or 169.254.169.254 through.

IPv4 literals are read as the C resolver reads them (`inet_aton`: `2852039166`, `0xa9.0xfe.0.1`
and `127.1` are addresses, not names), so an unusual spelling of an internal address is still
seen as one. Pure: imports only the standard library.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The setting an administrator changes, named in every refusal.
SETTING = "the operator's --allowed-hosts (Helm value allowedHosts)"

# Name suffixes that resolve only inside a cluster, a host or a LAN (RFC 6761, RFC 6762,
# RFC 8375, Kubernetes DNS, cloud-internal DNS).
INTERNAL_SUFFIXES = (
    "localhost",
    "localdomain",
    "local",
    "internal",
    "intranet",
    "lan",
    "home",
    "corp",
    "svc",
    "cluster.local",
    "home.arpa",
    "arpa",
)

# Ranges that are never a public platform's address. `is_global` covers most; listed so that a
# CIDR entry can be recognised as naming internal space on purpose.
INTERNAL_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def parse_ip(host: str) -> IPAddress | None:
    """The address a host literal stands for (any inet_aton spelling of IPv4), else None."""
    text = host.strip("[]").lower()
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    else:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        return addr
    if text and all(part for part in text.split(".")) and re.fullmatch(r"[0-9a-fx.]+", text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def normalise_host(host: str) -> str:
    """Lower case, without a trailing dot or IPv6 brackets."""
    return host.strip().strip("[]").lower().rstrip(".")


def _under(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def internal_name(name: str) -> bool:
    """Whether a host name only makes sense inside a cluster, a host or a LAN."""
    labels = name.split(".")
    if len(labels) < 2 or any(_under(name, s) for s in INTERNAL_SUFFIXES):
        return True
    return _TLD.match(labels[-1]) is None  # not a top-level domain (`svc-name.my-ns-1`)


def internal_address(addr: IPAddress) -> bool:
    """Whether an address is not a public one (loopback, link-local, private, reserved, ...)."""
    return not addr.is_global or any(addr in net for net in INTERNAL_NETWORKS)


@dataclass(frozen=True)
class HostEntry:
    """One `--allowed-hosts` entry, parsed."""

    text: str
    name: str | None = None  # exact host name
    suffix: str | None = None  # wildcard `*.suffix`
    address: IPAddress | None = None
    network: IPNetwork | None = None
    anything: bool = False  # `*`

    @classmethod
    def parse(cls, text: str) -> HostEntry:
        """An entry from its text; ValueError says what is wrong with it."""
        raw = text.strip().lower()
        if not raw:
            raise ValueError("an empty entry")
        if raw == "*":
            return cls(text=raw, anything=True)
        if "://" in raw:
            raise ValueError(f"{text!r}: an entry names a host, without a scheme or port")
        if "/" in raw:
            try:
                return cls(text=raw, network=ipaddress.ip_network(raw, strict=False))
            except ValueError:
                raise ValueError(f"{text!r} is not a CIDR range") from None
        if raw.startswith("*."):
            suffix = raw[2:].rstrip(".")
            _check_name(text, suffix)
            return cls(text=raw, suffix=suffix)
        try:
            return cls(text=raw, address=ipaddress.ip_address(raw.strip("[]")))
        except ValueError:
            pass
        if ":" in raw:
            raise ValueError(f"{text!r}: an entry names a host, without a scheme or port")
        name = raw.rstrip(".")
        _check_name(text, name)
        return cls(text=raw, name=name)

    def matches(self, host: str, addr: IPAddress | None) -> bool:
        """Whether this entry covers the (normalised) host."""
        if self.anything:
            return True
        if addr is not None:
            if self.address is not None:
                return _same(self.address, addr)
            return (
                self.network is not None
                and addr.version == self.network.version
                and (addr in self.network)
            )
        if self.name is not None:
            return host == self.name
        return self.suffix is not None and host.endswith("." + self.suffix)

    @property
    def explicit(self) -> bool:
        """Whether a match by this entry lets an internal host through (it names it on purpose)."""
        if self.name is not None or self.address is not None:
            return True
        if self.network is not None:
            net = self.network
            return any(
                net.version == inner.version and net.subnet_of(inner)  # type: ignore[arg-type]
                for inner in INTERNAL_NETWORKS
            )
        return self.suffix is not None and any(_under(self.suffix, s) for s in INTERNAL_SUFFIXES)


def _same(a: IPAddress, b: IPAddress) -> bool:
    mapped = a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) else None
    return (mapped or a) == b


def _check_name(text: str, name: str) -> None:
    if not name or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{text!r} is not a host name, wildcard, IP address or CIDR range")


@dataclass(frozen=True)
class HostPolicy:
    """The allowed hosts; `refusal` says why a URL may not be used, or None when it may."""

    entries: tuple[HostEntry, ...] = ()
    refuse_all: str | None = None  # why every host is refused (a platform refused as a whole)

    @classmethod
    def parse(cls, values: list[str] | tuple[str, ...] | None) -> HostPolicy:
        """From repeated and/or comma-separated `--allowed-hosts` values (ValueError if bad)."""
        texts = [t for v in values or () for t in v.split(",") if t.strip()]
        return cls(tuple(HostEntry.parse(t) for t in texts))

    def describe(self) -> str:
        """The setting as an administrator would write it."""
        if not self.entries:
            return "empty: public hosts only"
        return ",".join(e.text for e in self.entries)

    def allows_host(self, host: str) -> bool:
        """Whether a request to `host` may be sent."""
        return self.host_refusal(host) is None

    def host_refusal(self, host: str) -> str | None:
        """Why `host` is refused (None: allowed)."""
        if self.refuse_all is not None:
            return self.refuse_all
        name = normalise_host(host)
        if not name:
            return "the URL names no host"
        addr = parse_ip(name)
        internal = internal_address(addr) if addr is not None else internal_name(name)
        kind = "an internal address" if addr is not None else "a cluster-internal or local name"
        if not self.entries:
            if not internal:
                return None
            return (
                f"host {name!r} is {kind} and {SETTING} is empty (public hosts only); "
                "list it there to allow it"
            )
        for entry in self.entries:
            if entry.matches(name, addr) and (entry.explicit or not internal):
                return None
        why = f"{kind}, not listed by name" if internal else "not listed"
        return f"host {name!r} is {why} in {SETTING} = {self.describe()}"

    def refusal(self, url: str) -> str | None:
        """Why a URL is refused (None: allowed); only http and https are ever allowed."""
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            return f"{url!r} is not a URL"
        if parts.scheme not in {"http", "https"}:
            return f"{url!r} is not an http(s) URL"
        if parts.username or parts.password:
            return "a platform URL carries no user name or password (use the Secrets)"
        return self.host_refusal(host)


#: The operator's default: every public host, nothing internal.
PUBLIC_ONLY = HostPolicy()


def refuse_all(why: str) -> HostPolicy:
    """A policy that refuses every host, saying `why`."""
    return HostPolicy(refuse_all=why)


__all__ = [
    "PUBLIC_ONLY",
    "SETTING",
    "HostEntry",
    "HostPolicy",
    "internal_address",
    "internal_name",
    "parse_ip",
    "refuse_all",
]
