"""The Dockerfile, checked statically (no container engine here) and its entrypoint run.

A small parser reads instructions (with line continuations); the checks are the issue's rules:
multi-stage, pinned base, non-root user, no build tools or pip in the final stage, and
`python -m skaha_operator` as the entrypoint.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "git", "curl", "wget", "pip install")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continuations joined."""
    out: list[tuple[str, str]] = []
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        word, _, rest = logical.partition(" ")
        out.append((word.upper(), rest.strip()))
        logical = ""
    return out


def stages(parsed: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Instructions grouped by FROM; each group starts with its FROM."""
    groups: list[list[tuple[str, str]]] = []
    for ins in parsed:
        if ins[0] == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(ins)
    return groups


PARSED = instructions((ROOT / "Dockerfile").read_text())
ARGS = dict(a.split("=", 1) for k, a in PARSED if k == "ARG" and "=" in a)


def base_image(from_args: str) -> str:
    image = from_args.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], image)


def test_parser_joins_continuations() -> None:
    got = instructions("# c\nFROM a AS b\nRUN x \\\n && y\n\nUSER 1\n")
    assert got == [("FROM", "a AS b"), ("RUN", "x  && y"), ("USER", "1")]


def test_multi_stage_with_pinned_bases() -> None:
    groups = stages(PARSED)
    assert len(groups) == 2
    for group in groups:
        image = base_image(group[0][1])
        tag = image.partition(":")[2]
        assert "@sha256:" in image or re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9.-]+)?", tag), image
        assert "latest" not in image


def test_final_stage_is_non_root_and_has_no_build_tools() -> None:
    final = stages(PARSED)[-1]
    users = [a for k, a in final if k == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a numeric UID lets Kubernetes check runAsNonRoot"
    assert int(uid) != 0
    assert int(uid) == 10001, "the chart's podSecurityContext.runAsUser"
    runs = " ".join(a for k, a in final if k == "RUN")
    assert not [tool for tool in BUILD_TOOLS if tool in runs]
    assert "apt-get install" not in runs
    copies = [a for k, a in final if k in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_entrypoint_is_the_module_in_exec_form() -> None:
    final = stages(PARSED)[-1]
    (entry,) = [a for k, a in final if k == "ENTRYPOINT"]
    assert json.loads(entry) == ["python", "-m", "skaha_operator"]
    (cmd,) = [a for k, a in final if k == "CMD"]
    assert json.loads(cmd)[0] == "run"


def test_build_context_has_what_the_build_copies_and_ignores_the_rest() -> None:
    build = stages(PARSED)[0]
    sources = [a.split()[:-1] for k, a in build if k == "COPY"]
    for path in (p for group in sources for p in group):
        assert (ROOT / path).exists(), path
    ignored = (ROOT / ".dockerignore").read_text().split()
    for heavy in (".git", ".venv", "tests"):
        assert heavy in ignored
    assert "operator" not in ignored


def test_the_entrypoint_module_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "skaha_operator", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for command in ("run", "simulator", "controlplane", "demo"):
        assert command in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "skaha_operator", "run", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for flag in ("--liveness", "--metrics-port", "--log-format", "--namespace"):
        assert flag in done.stdout
