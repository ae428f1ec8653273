"""Shared fixtures. moto is imported before any boto3 client exists, so every client is mockable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from domicile.models.blas import pin_kernels

pin_kernels()  # before numpy loads OpenBLAS: the model rebuild tests compare bytes with the committed files

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
MODELS = ROOT / "models"
TOPOLOGY = ROOT / "tests" / "topology.toml"  # the suite's own, whatever the project's domicile.toml says
REGION = "eu-central-1"
ACCOUNT = "123456789012"
RESULTS_QUEUE = "domicile-results"
RESULTS_QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{RESULTS_QUEUE}"
BUCKET = "domicile-data-eu-central-1"
AGGREGATES_TABLE = "domicile-aggregates"

# The inference function's environment, as the stack sets it (the handlers read it at import).
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "JURISDICTION": "eu",
        "MODEL_DIR": str(MODELS),
        "DEFAULT_MODEL": "digits-cloud",
        "SPLIT_MODEL": "digits-deep",
        "SPLIT_CUT": "hidden1",
        "RESULTS_QUEUE_URL": RESULTS_QUEUE_URL,
        "AGGREGATES_TABLE": AGGREGATES_TABLE,
        "ARCHIVE_BUCKET": BUCKET,
        "QUARANTINE_BUCKET": BUCKET,
        "ALLOWED_REGIONS": "eu-central-1,eu-west-1",
        "POWERTOOLS_METRICS_NAMESPACE": "Domicile",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "DOMICILE_TOPOLOGY": str(TOPOLOGY),  # every load_topology() and `domicile` subprocess of the suite
    }
)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; past `timeout` seconds, fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        time.sleep(0.05)


def aggregate_row(fleet: str, device: str, model: str, hour: str) -> dict[str, Any] | None:
    """One count row of the aggregates table, read straight from DynamoDB (the key as the docs state it)."""
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=AGGREGATES_TABLE, Key={"pk": {"S": f"{fleet}#{device}#{model}"}, "sk": {"S": hour}},
        ConsistentRead=True,
    ).get("Item")  # fmt: skip
    if item is None:
        return None
    return {k: (float(v["N"]) if "N" in v else v.get("S")) for k, v in item.items()}


def run_cli(*args: str, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`domicile ARGS` in a fresh interpreter, as a user runs it (nothing this test process loaded carries over)."""
    return subprocess.run(
        [sys.executable, "-m", "domicile_local.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        **kwargs,
    )  # fmt: skip


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def lambda_context() -> Any:
    from domicile_local.invoke import LambdaContext

    return LambdaContext(function_name="domicile-test", region=REGION)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def results_queue(aws: None) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs.create_queue(QueueName=RESULTS_QUEUE)["QueueUrl"]


@pytest.fixture
def bucket(aws: None) -> str:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    return BUCKET


def drain(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Any]:
    """A running mosquitto on a free loopback port (stop() and start() simulate an outage)."""
    from tests.broker import Broker

    instance = Broker(tmp_path)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def subscriber(broker: Any) -> Iterator[Any]:
    from tests.broker import Subscriber

    sub = Subscriber(broker)
    yield sub
    sub.close()


@pytest.fixture
def tables(aws: None) -> str:
    """The aggregates table, keyed as the stack declares it (see test_regional_stack)."""
    from domicile_local.demo import create_aggregation_tables

    return create_aggregation_tables(REGION)["AGGREGATES_TABLE"]


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    """The real app, synthesized once per test process (bundling reuses the pip cache)."""
    from domicile.config.topology import load_topology
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(load_topology(), outdir=str(outdir))
    assembly = app.synth()
    return app, assembly, outdir


@pytest.fixture(scope="session")
def greengrass_cloud(synthesized: tuple[Any, Any, Path]) -> Any:
    """What the synthesized templates create in Greengrass: component versions, deployments, artifacts."""
    from domicile_local.greengrass import GreengrassCloud
    from domicile_local.sim.assembly import load_stacks

    _, _, outdir = synthesized
    cloud = GreengrassCloud(outdir)
    for stack in load_stacks(outdir):
        cloud.add_stack(stack)
    return cloud


def synthesize_variant(tmp_path_factory: pytest.TempPathFactory, name: str, **overrides: Any) -> Any:
    """The default topology with every fleet overridden (mode, component), synthesized, as a Greengrass cloud."""
    from domicile.config.topology import load_topology, with_fleet_overrides
    from domicile_local.greengrass import GreengrassCloud
    from domicile_local.sim.assembly import load_stacks
    from infra.app import build_app

    outdir = tmp_path_factory.mktemp(name)
    build_app(with_fleet_overrides(load_topology(), **overrides), outdir=str(outdir)).synth()
    cloud = GreengrassCloud(outdir)
    for stack in load_stacks(outdir):
        cloud.add_stack(stack)
    return cloud


@pytest.fixture(scope="session")
def generic_cloud(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The default topology with generic (IPC) edge components, synthesized once per test process."""
    from domicile.config.topology import EdgeComponentKind

    return synthesize_variant(tmp_path_factory, "generic.cdk.out", component=EdgeComponentKind.GENERIC)
