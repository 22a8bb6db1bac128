"""Start and stop a throwaway control plane: etcd, kube-apiserver, maybe kube-controller-manager.

The envtest model (docs/kubernetes-notes.md §9): plain processes on free loopback ports,
a throwaway data dir, a static bearer token in group system:masters (no manual auth step), the
apiserver's self-signed serving cert as the kubeconfig's CA. Without kube-controller-manager there
is no garbage collection and no namespace finalization; start it when a test needs those.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from skaha_operator.controlplane.binaries import binary
from skaha_operator.controlplane.processes import Child, free_port, wait_http_ok

_PREFIX = "skaha-cp-"
# What the tests need by default: garbage collection, namespace finalization, service accounts.
DEFAULT_CONTROLLERS = "garbagecollector,namespace,serviceaccount,serviceaccount-token"


def _sweep_orphans(base: Path) -> None:
    # A SIGKILLed owner cannot clean up; its children died with it (PR_SET_PDEATHSIG) but its data
    # dir stays. The next launcher removes data dirs whose owner process is gone.
    for stale in base.glob(f"{_PREFIX}*"):
        try:
            os.kill(int((stale / "owner.pid").read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (OSError, ValueError):
            continue


class ControlPlane:
    """A local Kubernetes control plane; use as a context manager so it always comes down."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        controller_manager: bool = False,
        controllers: str = DEFAULT_CONTROLLERS,
        audit: bool = False,
        start_timeout: float = 90.0,
    ) -> None:
        self._own_workdir = workdir is None
        if workdir is None:
            base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
            _sweep_orphans(base)
            workdir = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base))
            (workdir / "owner.pid").write_text(str(os.getpid()))
        self.workdir = workdir
        self.with_controller_manager = controller_manager
        self.controllers = controllers
        self.audit = audit
        self.start_timeout = start_timeout
        self.token = secrets.token_hex(16)
        self.port = 0
        self.etcd_url = ""
        self.children: list[Child] = []

    @property
    def server(self) -> str:
        """The API server's URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        """Path of the kubeconfig written at start."""
        return self.workdir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """JSON-lines audit log of ServiceAccount requests (only with `audit=True`)."""
        return self.workdir / "audit.log"

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-signed serving certificate bundle, trusted by the kubeconfig."""
        return self.workdir / "certs" / "apiserver.crt"

    def __enter__(self) -> ControlPlane:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd, kube-apiserver (and kube-controller-manager), each waited on until ready."""
        deadline = time.monotonic() + self.start_timeout
        (self.workdir / "certs").mkdir(parents=True, exist_ok=True)
        self._write_keys()
        self.etcd_url = self._start_etcd(deadline)
        self._start_apiserver(self.etcd_url, deadline)
        self._write_kubeconfig()
        if self.with_controller_manager:
            self._start_controller_manager(deadline)

    def restart_apiserver(self, down_for: float = 0.0) -> None:
        """Stop kube-apiserver, wait `down_for` seconds, start it again on the same port.

        etcd keeps running, so every object survives; clients see refused connections and
        broken watches meanwhile (the reliability campaign's API-server fault).
        """
        old = next(c for c in self.children if c.name == "kube-apiserver")
        old.stop()
        self.children.remove(old)
        time.sleep(down_for)
        self._start_apiserver(self.etcd_url, time.monotonic() + self.start_timeout)

    def stop(self) -> None:
        """Stop every child (newest first) and remove the work dir if we made it."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this apiserver."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def version(self) -> dict[str, str]:
        """The apiserver's /version document."""
        import urllib.request

        req = urllib.request.Request(
            f"{self.server}/version", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=5, context=self.ssl_context()) as resp:
            doc: dict[str, str] = json.load(resp)
            return doc

    def _spawn(self, name: str, argv: list[str]) -> Child:
        child = Child(name=name, argv=argv, log_path=self.workdir / f"{name}.log")
        self.children.append(child)
        child.start()
        return child

    def _write_keys(self) -> None:
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        openssl = shutil.which("openssl") or "openssl"
        subprocess.run(
            [openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        subprocess.run(
            [openssl, "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
            check=True,
            capture_output=True,
        )
        # Line format: token,user,uid,"group1,group2" (kube-apiserver --token-auth-file).
        (self.workdir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')

    def _start_etcd(self, deadline: float) -> str:
        client, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        child = self._spawn(
            "etcd",
            [
                str(binary("etcd")),
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        wait_http_ok(f"{client_url}/health", deadline, child)
        return client_url

    def _start_apiserver(self, etcd_url: str, deadline: float) -> None:
        self.port = self.port or free_port()  # a restart keeps the port the kubeconfig names
        child = self._spawn(
            "kube-apiserver",
            [
                str(binary("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--disable-admission-plugins=ServiceAccount",
                "--service-account-issuer=https://127.0.0.1/",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                "--enable-priority-and-fairness=false",
                "--v=0",
                *self._audit_flags(),
            ],
        )
        # The cert appears a moment after start; readiness implies it exists.
        while not self.ca_file.exists() and time.monotonic() < deadline and child.alive():
            time.sleep(0.05)
        wait_http_ok(
            f"{self.server}/readyz", deadline, child, token=self.token, context=self.ssl_context()
        )

    def _audit_flags(self) -> list[str]:
        # Metadata (who, verb, resource, code) of every request made with a ServiceAccount token:
        # tests run the operator as one to list the verbs it really uses against its RBAC.
        if not self.audit:
            return []
        policy = self.workdir / "audit-policy.json"
        policy.write_text(
            json.dumps(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived"],
                    "rules": [
                        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
                        {"level": "None"},
                    ],
                }
            )
        )
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}"]

    def _start_controller_manager(self, deadline: float) -> None:
        port = free_port()
        child = self._spawn(
            "kube-controller-manager",
            [
                str(binary("kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--controllers={self.controllers}",
                f"--service-account-private-key-file={self.workdir / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
            ],
        )
        wait_http_ok(
            f"https://127.0.0.1:{port}/healthz",
            deadline,
            child,
            token=self.token,
            context=_insecure(),
        )

    def _write_kubeconfig(self) -> None:
        # JSON is valid YAML, so kubectl, kopf and the kubernetes client all read this file.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.ca_file),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)


def _insecure() -> ssl.SSLContext:
    # kube-controller-manager serves /healthz with its own throwaway self-signed certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
