"""Run the edge component on any Linux box (no Greengrass), publishing over MQTT.

    python -m edge_components.inference.standalone --broker mqtts://<endpoint>:8883 \\
        --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key \\
        --thing munich-line-0 --fleet munich-line --input cases.jsonl

Each input line is `{"case_id": "...", "features": [64 numbers]}`; without --input, the held-out
digits test rows are used. Settings not given as flags come from the topology file.

Every message is spooled before it is published, with the input position it covers, so a device
that was killed (power cut, OOM, reboot) and is started again with `--resume` and the same input
and spool folder continues where its output stopped being durable: no case lost, and a case sent
again carries the same message id (case ids must be unique per device), which the cloud drops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from domicile.config.project import registry_dir
from domicile.config.topology import FleetMode, load_topology
from domicile.edge.transport import MqttTransport
from edge_components.inference.build import build_device
from edge_components.inference.settings import EdgeSettings


def _cases(path: str | None, limit: int) -> Iterator[tuple[str, list[float]]]:
    if path:
        with open(path) as handle:
            for line in handle:
                if line.strip():
                    case = json.loads(line)
                    yield str(case["case_id"]), case["features"]
        return
    from domicile.models.datasets import load_digits_splits

    test = load_digits_splits().test
    for i, row in enumerate(test.x[:limit]):
        yield f"test-{i}", row.tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True, help="mqtt://host:1883 or mqtts://host:8883")
    parser.add_argument("--thing", required=True, help="the device's thing name (its MQTT client id)")
    parser.add_argument("--fleet", required=True)
    parser.add_argument("--topology", help="topology file (default: domicile.toml)")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--spool-dir", default=str(Path.home() / ".domicile" / "spool"))
    parser.add_argument("--input", help="JSON-lines file of cases (default: the digits test split)")
    parser.add_argument("--limit", type=int, default=100, help="test rows to send without --input")
    parser.add_argument("--rate", type=float, default=50.0, help="cases per second")
    parser.add_argument(
        "--resume", action="store_true", help="continue the input where this device's spool says it stopped"
    )
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args(argv)

    topology = load_topology(args.topology)
    if args.fleet not in topology.fleets:
        parser.error(f"--fleet: unknown fleet {args.fleet!r}; known: {', '.join(topology.fleets)}")
    fleet = topology.fleets[args.fleet]
    split = topology.split_model() if fleet.mode is FleetMode.SPLIT else None
    settings = EdgeSettings(
        aws_iot_thing_name=args.thing,
        fleet=fleet.name,
        jurisdiction=fleet.jurisdiction,
        home_region=fleet.home_region,
        mode=fleet.mode,
        model_dir=registry_dir(args.model_dir),
        model_name=split.name if split else topology.edge_model_of(fleet),
        split_cut=split.cut if split else None,
        split_encoding=(split.encoding or "float32") if split else "float32",
        spool_dir=Path(args.spool_dir),
    )
    transport = MqttTransport(args.broker, args.thing, ca_file=args.ca, cert_file=args.cert, key_file=args.key)
    device = build_device(settings, transport, write_ahead=True)
    start = device.forward.spool.resume_point() if args.resume else 0
    for position, (case_id, features) in enumerate(_cases(args.input, args.limit)):
        if position < start:
            continue  # its output is already published or spooled
        device.infer([case_id], [features], positions=[position])
        device.tick()
        time.sleep(1.0 / args.rate)
    device.close()
    transport.close()
    print(
        json.dumps(
            {
                **device.stats.as_dict(),
                **device.forward.stats.as_dict(),
                "spool_left": len(device.forward.spool),
                "resumed_at": start,
            }
        )
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
