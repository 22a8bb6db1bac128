"""The allowed-hosts policy (platform/hosts.py): which URLs a SkahaPlatform may name, decided from
the URL alone; and the client guard that refuses a request before anything is sent."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from skaha_operator.platform.clients import PlatformClients, PlatformSettings, RucioSettings
from skaha_operator.platform.errors import MAX_SERVER_TEXT, BadReply, HostNotAllowed, bounded
from skaha_operator.platform.hosts import SETTING, HostEntry, HostPolicy, parse_ip
from skaha_operator.platform.retry import NO_RETRY

DEFAULT = HostPolicy()
LISTED = HostPolicy.parse(["*.canfar.net, skaha.example.org", "10.20.0.0/16", "127.0.0.1"])


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://ws-uv.canfar.net/skaha", True),
        ("https://src.skao.int/arc", True),
        ("http://93.184.216.34/skaha", True),  # a public IPv4 literal
        ("https://[2606:4700::1111]/skaha", True),  # a public IPv6 literal
        # internal addresses, in any spelling the resolver would accept
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://2852039166/", False),  # 169.254.169.254 as one number
        ("http://0xa9.0xfe.0xa9.0xfe/", False),
        ("http://0251.0376.0251.0376/", False),  # octal
        ("http://127.1:8765/skaha", False),
        ("http://127.0.0.1:8765/skaha", False),
        ("http://[::1]/skaha", False),
        ("http://[::ffff:169.254.169.254]/", False),
        ("http://[fe80::1]/", False),
        ("http://10.0.0.1/", False),
        ("http://172.16.5.4/", False),
        ("http://192.168.1.1/", False),
        ("http://100.64.0.1/", False),  # carrier-grade NAT
        ("http://0.0.0.0/", False),
        # internal names
        ("http://localhost:8765/skaha", False),
        ("http://LOCALHOST./skaha", False),
        ("https://kubernetes/api", False),  # a single label: the pod's search domains decide
        ("https://kubernetes.default.svc/api", False),
        ("https://kubernetes.default.svc.cluster.local./api", False),
        ("http://skaha.science.svc.cluster.local/skaha", False),
        ("http://metadata.google.internal/", False),
        ("http://printer.local/", False),
        ("http://svc-name.ns-1/", False),  # `<service>.<namespace>` is not a public name
        # not http(s), or credentials in the URL
        ("file:///etc/passwd", False),
        ("gopher://ws-uv.canfar.net/", False),
        ("https://user:pw@ws-uv.canfar.net/", False),
        ("https:///skaha", False),
    ],
)
def test_default_allows_public_hosts_only(url: str, allowed: bool) -> None:
    assert (DEFAULT.refusal(url) is None) is allowed, DEFAULT.refusal(url)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://ws-uv.canfar.net/skaha", True),
        ("https://a.b.canfar.net/skaha", True),
        ("https://canfar.net/skaha", False),  # the wildcard is for names below it
        ("https://evilcanfar.net/skaha", False),
        ("https://skaha.example.org/skaha", True),
        ("https://SKAHA.example.org./skaha", True),
        ("https://other.example.org/skaha", False),  # public, but the list is the list
        ("http://10.20.3.4/", True),  # inside a listed internal range
        ("http://10.21.3.4/", False),
        ("http://127.0.0.1:8765/skaha", True),  # listed by address
        ("http://127.1:8765/skaha", True),  # the same address, spelled differently
        ("http://127.0.0.2/", False),
        ("http://localhost/", False),  # a name is not its address: not listed
        ("http://169.254.169.254/", False),
    ],
)
def test_a_list_allows_only_what_it_names(url: str, allowed: bool) -> None:
    assert (LISTED.refusal(url) is None) is allowed, LISTED.refusal(url)


@pytest.mark.parametrize(
    ("entries", "url", "allowed"),
    [
        # Broad entries never let an internal host through; naming it does.
        (["*"], "https://ws-uv.canfar.net/", True),
        (["*"], "http://169.254.169.254/", False),
        (["*"], "http://localhost/", False),
        (["0.0.0.0/0"], "http://169.254.169.254/", False),
        (["0.0.0.0/0"], "http://93.184.216.34/", True),
        (["::/0"], "http://[::1]/", False),
        (["169.254.0.0/16"], "http://169.254.169.254/", True),
        (["169.254.169.254"], "http://169.254.169.254/", True),
        (["*.net"], "http://svc.net/", True),
        (["*.svc.cluster.local"], "http://skaha.science.svc.cluster.local/", True),
        (["*.cluster.local"], "http://skaha.science.svc.cluster.local/", True),
        (["localhost"], "http://localhost:8765/", True),
        (["kubernetes.default.svc"], "https://kubernetes.default.svc/", True),
        (["::1"], "http://[::1]:8765/", True),
    ],
)
def test_internal_hosts_need_an_explicit_entry(entries: list[str], url: str, allowed: bool) -> None:
    policy = HostPolicy.parse(entries)
    assert (policy.refusal(url) is None) is allowed, policy.refusal(url)


def test_a_refusal_names_the_setting_and_the_host() -> None:
    why = LISTED.refusal("https://other.example.org/skaha")
    assert why is not None
    assert SETTING in why
    assert "'other.example.org'" in why
    assert "*.canfar.net,skaha.example.org,10.20.0.0/16,127.0.0.1" in why
    why = DEFAULT.refusal("http://169.254.169.254/")
    assert why is not None
    assert SETTING in why
    assert "public hosts only" in why


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("", "empty"),
        ("http://x.org", "without a scheme or port"),
        ("x.org:443", "without a scheme or port"),
        ("*.", "is not a host name"),
        ("bad_name.org", "is not a host name"),
        ("10.0.0.0/33", "is not a CIDR range"),
        ("-a.org", "is not a host name"),
    ],
)
def test_bad_entries_are_refused(entry: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        HostEntry.parse(entry)


def test_inet_aton_spellings_are_addresses() -> None:
    assert str(parse_ip("2852039166")) == "169.254.169.254"
    assert str(parse_ip("127.1")) == "127.0.0.1"
    assert str(parse_ip("[::ffff:127.0.0.1]")) == "127.0.0.1"
    assert parse_ip("dead.beef") is None
    assert parse_ip("ws-uv.canfar.net") is None


async def test_the_client_guard_sends_nothing_to_a_refused_host() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    settings = PlatformSettings(
        skaha_url="https://ws-uv.canfar.net/skaha",
        cavern_url="http://169.254.169.254/arc",
        token=SecretStr("tok-guarded"),
        rucio=RucioSettings(
            url="https://rucio.canfar.net",
            auth_url="http://localhost:1234",
            account="a",
            username="a",
            password=SecretStr("pw"),
        ),
        retry=NO_RETRY,
        hosts=HostPolicy.parse(["*.canfar.net"]),
    )
    clients = PlatformClients.create(settings, transport=httpx.MockTransport(record))
    try:
        with pytest.raises(HostNotAllowed) as refused:
            await clients.cavern.list_dir("home/alice")
        assert "169.254.169.254" in refused.value.message
        assert clients.rucio is not None
        with pytest.raises(HostNotAllowed):
            await clients.rucio.authenticate()  # the separate auth host is checked as well
        assert sent == []
        with pytest.raises(BadReply):  # an allowed host is reached (the reply is no VOSI XML)
            await clients.skaha.capabilities()
        assert [r.url.host for r in sent] == ["ws-uv.canfar.net"]
    finally:
        await clients.aclose()


def test_server_text_is_bounded() -> None:
    text = "x" * 10_000
    cut = bounded(text)
    assert len(cut) <= MAX_SERVER_TEXT
    kept = cut.index(" [")
    assert cut == "x" * kept + f" [... {10_000 - kept} more characters]"
    assert kept > MAX_SERVER_TEXT - 40
    assert bounded("short") == "short"


def test_the_command_line_refuses_a_bad_entry(capsys: pytest.CaptureFixture[str]) -> None:
    from skaha_operator.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "--allowed-hosts", "*.canfar.net,https://ws-uv.canfar.net"])
    assert exited.value.code == 2
    assert "--allowed-hosts: 'https://ws-uv.canfar.net'" in capsys.readouterr().err
