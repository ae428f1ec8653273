"""Least privilege in the synthesized templates: IAM actions on data, and device IoT policies in use.

IoT policies are evaluated here as IoT Core does for Publish: the policy variable is the connecting
thing's name, and a resource matches when its ARN matches the statement's pattern (`*` any run of
characters, `?` one). No local service evaluates IoT policies (moto stores them, never enforces).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from domicile.config.topology import FleetMode, load_topology
from infra.app import regional_stack_name

TOPOLOGY = load_topology()
ACCOUNT = "123456789012"
DATA_SERVICES = ("s3", "dynamodb", "sqs", "kms", "lambda", "iot", "logs", "greengrass")


def _templates(outdir) -> dict[str, dict[str, Any]]:
    return {
        r: json.loads((outdir / f"{regional_stack_name(r)}.template.json").read_text()) for r in TOPOLOGY.home_regions()
    }


def _resolve(value: Any, region: str) -> Any:
    """Fn::Join and the pseudo parameters, as CloudFormation resolves them in an account."""
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(str(_resolve(p, region)) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": ACCOUNT}.get(value["Ref"], "<ref>")
    if isinstance(value, dict):
        return {k: _resolve(v, region) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, region) for v in value]
    return value


def _allows(document: dict[str, Any], action: str, resource: str, thing: str) -> bool:
    allowed = False
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        patterns = [r.replace("${iot:Connection.Thing.ThingName}", thing) for r in resources if isinstance(r, str)]
        if action in actions and any(fnmatch.fnmatchcase(resource, p) for p in patterns):
            if statement["Effect"] == "Deny":
                return False
            allowed = True
    return allowed


@pytest.mark.parametrize("fleet", sorted(TOPOLOGY.fleets), ids=str)
def test_a_device_may_publish_on_its_own_topics_and_on_no_other_devices(synthesized, fleet):
    _, _, outdir = synthesized
    spec = TOPOLOGY.fleets[fleet]
    region = spec.home_region
    template = _templates(outdir)[region]
    (policy,) = [
        _resolve(r["Properties"]["PolicyDocument"], region)
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IoT::Policy" and r["Properties"]["PolicyName"] == f"domicile-{fleet}-device"
    ]
    me, neighbour = f"{fleet}-0", f"{fleet}-1"
    topic = f"arn:aws:iot:{region}:{ACCOUNT}:topic/domicile/{spec.jurisdiction}"
    kind = {FleetMode.CLOUD_ONLY: "escalate", FleetMode.SPLIT: "split"}.get(spec.mode, "result")
    assert _allows(policy, "iot:Publish", f"{topic}/{fleet}/{me}/{kind}", me)
    # another device of the same fleet, another fleet, another jurisdiction, the rule topics' roots
    root = f"arn:aws:iot:{region}:{ACCOUNT}:topic/domicile"
    others = [
        f"{topic}/{fleet}/{neighbour}/{kind}", f"{topic}/other-fleet/{me}/{kind}", f"{root}/zz/{fleet}/{me}/{kind}",
        f"{topic}/{fleet}/{me}", f"{root}/local/{neighbour}/input",
    ]  # fmt: skip
    for other in others:
        assert not _allows(policy, "iot:Publish", other, me), other
    assert not _allows(policy, "iot:Subscribe", f"arn:aws:iot:{region}:{ACCOUNT}:topicfilter/domicile/#", me)
    assert not _allows(policy, "iot:Connect", f"arn:aws:iot:{region}:{ACCOUNT}:client/{neighbour}", me)
    # another region's endpoint is never in the policy
    assert not _allows(policy, "iot:Publish", f"{topic}/{fleet}/{me}/{kind}".replace(region, "ap-south-1"), me)


def _allow_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for lid, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for document in documents:
            out += [(lid, s) for s in document["Statement"] if s["Effect"] == "Allow"]
    return out


def test_no_role_may_take_every_action_of_a_data_service(synthesized):
    _, _, outdir = synthesized
    checked = 0
    for region, template in _templates(outdir).items():
        for lid, statement in _allow_statements(template):
            actions = statement.get("Action", [])
            actions = actions if isinstance(actions, list) else [actions]
            checked += len(actions)
            assert "NotAction" not in statement, (region, lid)  # an Allow with NotAction grants the rest of AWS
            for action in actions:
                assert action != "*", (region, lid)
                service, _, name = action.partition(":")
                assert not (service in DATA_SERVICES and name == "*"), (region, lid, action)
    assert checked > 50  # the policies were there to check


def _of_type(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == rtype}


@pytest.mark.parametrize("region", TOPOLOGY.home_regions())
def test_every_log_group_is_encrypted_with_the_regions_key(synthesized, region):
    _, _, outdir = synthesized
    template = _templates(outdir)[region]
    (key_id,) = _of_type(template, "AWS::KMS::Key")
    groups = _of_type(template, "AWS::Logs::LogGroup")
    assert groups
    for lid, group in groups.items():
        assert group["Properties"].get("KmsKeyId") == {"Fn::GetAtt": [key_id, "Arn"]}, lid
    # CloudWatch Logs may use the key for this account's log groups in this region only.
    statements = template["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    (logs_statement,) = [s for s in statements if s["Principal"].get("Service") == f"logs.{region}.amazonaws.com"]
    scope = _resolve(logs_statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"], region)
    assert scope == f"arn:aws:logs:{region}:{ACCOUNT}:log-group:*"


@pytest.mark.parametrize("region", TOPOLOGY.home_regions())
def test_every_alarm_notifies_the_regions_encrypted_alarm_topic(synthesized, region):
    _, _, outdir = synthesized
    template = _templates(outdir)[region]
    (topic_id, topic), *_ = _of_type(template, "AWS::SNS::Topic").items()
    assert "KmsMasterKeyId" in topic["Properties"]
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) > len(TOPOLOGY.fleets_in(region))  # canary alarms and one drift alarm per fleet
    for lid, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}], lid


@pytest.mark.parametrize("region", TOPOLOGY.home_regions())
def test_backups_are_daily_and_never_copied_out_of_the_region(synthesized, region):
    _, _, outdir = synthesized
    template = _templates(outdir)[region]
    (plan,) = _of_type(template, "AWS::Backup::BackupPlan").values()
    rules = plan["Properties"]["BackupPlan"]["BackupPlanRule"]
    assert rules and all(not rule.get("CopyActions") for rule in rules)
    (vault_id, vault), *_ = _of_type(template, "AWS::Backup::BackupVault").items()
    assert "EncryptionKeyArn" in vault["Properties"]
    assert all(rule["TargetBackupVault"] == {"Fn::GetAtt": [vault_id, "BackupVaultName"]} for rule in rules)
    (selection,) = _of_type(template, "AWS::Backup::BackupSelection").values()
    (table_arn,) = selection["Properties"]["BackupSelection"]["Resources"]
    assert "Aggregates" in table_arn["Fn::GetAtt"][0]
