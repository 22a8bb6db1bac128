"""A Cavern tree that existed before the operator: `/_sim/cavern/seed`, `cavern_seed`, the tree."""

from __future__ import annotations

import hashlib
from pathlib import Path

from skaha_operator.simulator import CavernSeed, Simulator, SimulatorConfig, load_config
from tests.simulator.helpers import Api

SEED = CavernSeed(
    dirs=["home/alice/old/empty", "projects/survey"],
    files={"home/alice/old/notes.txt": "keep me\n", "projects/survey/cat.csv": "ra,dec\n"},
)


async def test_seed_over_http_is_visible_through_cavern(sim: Simulator, alice: Api) -> None:
    """POST /_sim/cavern/seed makes parents too; Cavern lists and serves what was seeded."""
    control = Api(alice.http, alice.base, None)
    seeded = await control.call("POST", "/_sim/cavern/seed", json_body=SEED.model_dump())
    assert seeded.status == 200
    listing = await alice.call("GET", "/arc/nodes/home/alice/old")
    assert "vos://cadc.nrc.ca~arc/home/alice/old/notes.txt" in listing.text
    assert "vos://cadc.nrc.ca~arc/home/alice/old/empty" in listing.text
    assert (await alice.call("GET", "/arc/files/home/alice/old/notes.txt")).text == "keep me\n"
    tree = (await control.call("GET", "/_sim/cavern/tree", params={"under": "home/alice"})).json()
    assert tree == [
        {"path": "home/alice", "type": "container"},
        {"path": "home/alice/old", "type": "container"},
        {"path": "home/alice/old/empty", "type": "container"},
        {
            "path": "home/alice/old/notes.txt",
            "type": "data",
            "size": 8,
            "sha256": hashlib.sha256(b"keep me\n").hexdigest(),
        },
    ]


async def test_seeded_tree_survives_a_launch_and_refused_deletes(
    sim: Simulator, alice: Api
) -> None:
    """A launch allocates the home without touching it; Cavern refuses a non-empty delete."""
    sim.seed_cavern(dirs=SEED.dirs, files=SEED.files)
    before = sim.cavern_tree()
    await alice.launch_id(name="job")
    assert (await alice.call("DELETE", "/arc/nodes/home/alice/old")).status == 400
    assert sim.cavern_tree() == before


async def test_seed_errors(alice: Api) -> None:
    """Paths escaping the root, a file where a directory is, an unknown tree root."""
    control = Api(alice.http, alice.base, None)
    escape = await control.call("POST", "/_sim/cavern/seed", json_body={"dirs": ["home/../x"]})
    assert escape.status == 400
    clash = {"files": {"home/alice/f": "x", "home/alice/f/g": "y"}}
    assert (await control.call("POST", "/_sim/cavern/seed", json_body=clash)).status == 400
    unknown = await control.call("POST", "/_sim/cavern/seed", json_body={"paths": []})
    assert unknown.status == 400
    missing = await control.call("GET", "/_sim/cavern/tree", params={"under": "home/zed"})
    assert missing.status == 404


def test_seed_from_config_and_env(tmp_path: Path) -> None:
    """`cavern_seed` in the config (or SKAHA_SIM_CAVERN_SEED as JSON) is created at start."""
    config = load_config(None, environ={"SKAHA_SIM_CAVERN_SEED": '{"dirs": ["projects/p1"]}'})
    assert config.cavern_seed == CavernSeed(dirs=["projects/p1"])
    sim = Simulator(SimulatorConfig(cavern_root=tmp_path, cavern_seed=SEED))
    try:
        assert (tmp_path / "projects/survey/cat.csv").read_text() == "ra,dec\n"
        assert {"path": "projects/survey", "type": "container"} in sim.cavern_tree("projects")
    finally:
        sim.close()
