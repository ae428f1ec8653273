"""Region pinning: the synth-time Aspect on violating apps, the deploy-time guard on the real one."""

import json
import re
from pathlib import Path

import pytest
from aws_cdk import cx_api

from domicile.residency.report import report
from infra.app import synth_errors
from tests.infra import residency_fixtures as fx


def errors_of(app):
    return synth_errors(app.synth())


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (fx.stack_outside, ["EuInVirginia", "stack region us-east-1 is outside jurisdiction 'eu'"]),
        (fx.stack_without_region, ["Anywhere", "stack has no region", "'eu'"]),
        (fx.fleet_outside, ["Edge/Fleets", "fleet rogue has home region us-east-1", "'eu'"]),
        (fx.event_source, ["Events/Mapping", "event source", "us-east-1", "'eu'"]),
        (fx.lambda_destination, ["Destinations/Invoke", "lambda destination (OnFailure)", "us-east-1"]),
        (fx.cross_region_reference, ["Frankfurt/Fn", "environment RESULTS", "is in us-east-1", "'eu'"]),
        (fx.explicit_arn, ["Explicit/Fn", "explicit reference", "arn:aws:sns:us-east-1", "'eu'"]),
        (fx.s3_replication_unprovable, ["Replicated/Bucket", "s3 replication", "cannot be proven"]),
        (fx.dynamodb_replica, ["Global/Table", "dynamodb replica", "us-east-1", "'eu'"]),
        (fx.backup_copy, ["Backups/Plan", "backup copy", "us-east-1", "'eu'"]),
        (fx.log_subscription, ["Logs/Subscription", "log subscription", "us-east-1"]),
        (fx.log_destination, ["LogDestination/Destination", "log destination", "us-east-1"]),
        (fx.greengrass_artifact_elsewhere, ["Components/Model", "greengrass artifact", "us-east-1", "'eu'"]),
    ],
)
def test_violations_fail_synth_with_path_region_and_jurisdiction(build, expected):
    errors = [e for e in errors_of(build()) if "[residency]" in e]
    assert errors, "the violation was not reported"
    assert any(all(part in e for part in expected) for e in errors), errors


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("lambda", "iot rule action (lambda) -> arn:aws:lambda:us-east-1"),
        ("sqs", "iot rule action (sqs) -> https://sqs.us-east-1.amazonaws.com"),
        ("s3", "iot rule action (s3) -> somebody-elses-bucket is in a region that cannot be proven"),
        ("http", "iot rule action (http) -> https://collector.example.com/ingest is in outside-aws"),
        ("sns", "iot rule action (sns) -> arn:aws:sns:us-east-1"),
    ],
)
def test_iot_rule_actions_leaving_the_jurisdiction(action, expected):
    errors = [e for e in errors_of(fx.rule(fx.RULE_ACTIONS[action])()) if "[residency]" in e]
    assert any(expected in e and "Routing/Rule" in e and "'eu'" in e for e in errors), errors


def test_same_region_rule_actions_pass_and_only_the_foreign_one_fails():
    errors = [e for e in errors_of(fx.rule(fx.RULE_ACTIONS["kinesis (by ARN in a role)"])()) if "[residency]" in e]
    assert len(errors) == 1 and "(sqs)" in errors[0]


def test_a_reference_to_another_region_of_the_same_jurisdiction_is_allowed():
    assert [e for e in errors_of(fx.cross_region_reference_inside_jurisdiction()) if "[residency]" in e] == []


def test_the_real_app_passes(synthesized):
    _, assembly, _ = synthesized
    assert synth_errors(assembly) == []


def test_every_role_denies_other_regions(synthesized):
    from domicile.config.topology import load_topology

    topology = load_topology()
    _, _, outdir = synthesized
    for path in Path(outdir).glob("*.template.json"):
        template = json.loads(path.read_text())
        region = path.name.removeprefix("domicile-").removesuffix(".template.json")
        allowed = sorted(topology.regions_of(topology.jurisdiction_of_region(region)))
        roles = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"}
        guarded = set()
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                if statement.get("Sid") == "DenyOutsideJurisdiction":
                    assert statement["Effect"] == "Deny" and statement["Resource"] == "*"
                    assert sorted(statement["Condition"]["StringNotEquals"]["aws:RequestedRegion"]) == allowed
                    assert statement["NotAction"] == ["sts:*", "iam:*"]
                    guarded |= {r["Ref"] for r in resource["Properties"]["Roles"]}
        assert roles and roles == guarded, f"{path.name}: roles without the deny: {roles - guarded}"


def test_greengrass_artifacts_live_in_the_stacks_own_region(synthesized):
    _, _, outdir = synthesized
    for path in Path(outdir).glob("*.template.json"):
        region = path.name.removeprefix("domicile-").removesuffix(".template.json")
        template = json.loads(path.read_text())
        components = [v["Properties"] for v in template["Resources"].values() if v["Type"].endswith("ComponentVersion")]
        recipes = [json.dumps(c["InlineRecipe"]) for c in components if "InlineRecipe" in c]
        assert recipes
        for recipe in recipes:
            assert "assets-" in recipe and region in recipe


def _report(cdk_out, *flags):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "domicile_local.cli", "residency", "report", "--cdk-out", str(cdk_out), *flags],
        capture_output=True,
        text=True,
    )


def test_report_on_the_real_app_lists_every_flow_and_passes(synthesized):
    _, _, outdir = synthesized
    result = _report(outdir, "--json")
    assert result.returncode == 0, result.stdout[-2000:]
    rows = json.loads(result.stdout)
    kinds = {r["kind"] for r in rows}
    expected = {"placement", "iot rule action (sqs)", "iot rule action (lambda)", "iot rule error action (sqs)"}
    expected |= {"event source", "lambda destination (OnFailure)", "greengrass artifact", "s3 notification"}
    assert expected <= kinds
    assert all(r["allowed"] for r in rows)
    table = _report(outdir)
    assert table.returncode == 0 and "all in-jurisdiction" in table.stdout


def test_report_gates_a_pipeline_on_a_disallowed_flow():
    assembly = fx.lambda_destination().synth()
    result = _report(assembly.directory, "--json")
    assert result.returncode == 1
    bad = [r for r in json.loads(result.stdout) if not r["allowed"]]
    assert bad and bad[0]["kind"] == "lambda destination (OnFailure)" and bad[0]["region"] == "us-east-1"
    table = _report(assembly.directory)
    assert table.returncode == 1 and "1 leaving their jurisdiction" in table.stdout


def test_report_without_an_assembly_says_what_to_do(tmp_path):
    result = _report(tmp_path)
    assert result.returncode == 2 and "run `make synth` first" in result.stderr


# Every app the suite synthesizes for residency, violating or not: the two readings must agree on each.
AGREEMENT_APPS = {
    **{build.__name__: build for build in (
        fx.event_source, fx.lambda_destination, fx.cross_region_reference,
        fx.cross_region_reference_inside_jurisdiction, fx.explicit_arn, fx.s3_replication_unprovable,
        fx.dynamodb_replica, fx.backup_copy, fx.log_subscription, fx.log_destination,
        fx.greengrass_artifact_elsewhere,
    )},
    **{f"rule {action}": fx.rule(fx.RULE_ACTIONS[action]) for action in fx.RULE_ACTIONS},
}  # fmt: skip
_FLOW_ERROR = re.compile(r"^\[residency\] \S+: (?P<kind>.+?) -> ")


def _refused_by_the_aspect(assembly) -> set[tuple[str, str, str]]:
    """(stack, logical id, flow kind) of every flow the synth-time Aspect refused."""
    refused = set()
    for stack in assembly.stacks:
        logical_ids = {entry.path: entry.data for entry in stack.find_metadata_by_type("aws:cdk:logicalId")}
        for message in stack.messages:
            match = _FLOW_ERROR.match(str(message.entry.data))
            if message.level == cx_api.SynthesisMessageLevel.ERROR and match:
                refused.add((stack.stack_name, logical_ids[message.id], match["kind"]))
    return refused


def _refused_by_the_report(cdk_out) -> tuple[set[tuple[str, str, str]], int]:
    rows = [row for row in report(Path(cdk_out), fx.TOPOLOGY) if row.kind != "placement"]
    return {(row.stack, row.source, row.kind) for row in rows if not row.allowed}, len(rows)


@pytest.mark.parametrize("name", sorted(AGREEMENT_APPS))
def test_the_aspect_and_the_report_give_every_flow_the_same_verdict(name):
    assembly = AGREEMENT_APPS[name]().synth()
    refused, flows = _refused_by_the_report(assembly.directory)
    assert flows, "the report saw no flow at all"
    assert _refused_by_the_aspect(assembly) == refused


def test_the_aspect_and_the_report_agree_on_the_real_app(synthesized):
    _, assembly, outdir = synthesized
    refused, flows = _refused_by_the_report(outdir)
    assert flows > 20
    assert _refused_by_the_aspect(assembly) == refused == set()
