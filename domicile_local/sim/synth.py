"""Synthesize the project's CDK app for a local run, as `cdk synth` would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from domicile.config.topology import Topology
from domicile.errors import ConfigError


def synthesize(topology: Topology, out: Path, project: Path | None = None) -> Path:
    """The project's CDK app, run as `cdk synth` runs it, into the run's folder (refused if residency fails).

    The `app` command of the project's cdk.json gets `CDK_OUTDIR` as from the CDK CLI, and the topology
    (with any command-line overrides) as a file through `DOMICILE_TOPOLOGY`.
    """
    project = project or Path.cwd()
    cdk_json = project / "cdk.json"
    if not cdk_json.is_file():
        raise ConfigError(f"{project}: no cdk.json to synthesize; run in the project folder or pass --cdk-out")
    app = json.loads(cdk_json.read_text()).get("app")
    if not app:
        raise ConfigError(f"{cdk_json}: no `app` command")
    topology_path = out / "topology.json"
    topology_path.write_text(topology.model_dump_json(indent=2))
    cdk_out = out / "cdk.out"
    env = {**os.environ, "CDK_OUTDIR": str(cdk_out), "DOMICILE_TOPOLOGY": str(topology_path)}
    done = subprocess.run(app, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise ConfigError("synth failed:\n" + (done.stderr.strip() or done.stdout.strip())[-4000:])
    return cdk_out
