import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Annotations, Match, Template

from domicile.config.topology import FleetMode, load_topology
from infra.app import regional_stack_name
from infra.aspects.nag import PACKS, apply_nag
from tests.conftest import ROOT

TOPOLOGY = load_topology()
REGIONS = TOPOLOGY.home_regions()


def stack_of(app, region) -> Stack:
    stack = app.node.find_child(regional_stack_name(region))
    assert isinstance(stack, Stack)
    return stack


@pytest.fixture(params=REGIONS)
def region(request):
    return request.param


@pytest.fixture
def template(synthesized, region) -> Template:
    app, _, _ = synthesized
    return Template.from_stack(stack_of(app, region))


def test_one_stack_per_home_region_in_that_region(synthesized):
    app, assembly, _ = synthesized
    names = sorted(s.stack_name for s in assembly.stacks)
    assert names == sorted(regional_stack_name(r) for r in REGIONS)
    for region in REGIONS:
        assert stack_of(app, region).region == region


def test_functions(template, region):
    functions = template.find_resources("AWS::Lambda::Function", {"Properties": {"Runtime": "python3.14"}})
    ours = {k: v for k, v in functions.items() if v["Properties"]["Handler"].startswith("functions.")}
    split = any(f.mode is FleetMode.SPLIT for f in TOPOLOGY.fleets_in(region))
    assert len(ours) == 5 + split  # HTTP, SQS, S3, IoT escalation, aggregation (+ split tail)
    for resource in ours.values():
        props = resource["Properties"]
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        env = props["Environment"]["Variables"]
        assert env["JURISDICTION"] == TOPOLOGY.jurisdiction_of_region(region)
        if "aggregate" not in props["Handler"]:
            assert env["DEFAULT_MODEL"] == "digits-cloud"
            assert env["MODEL_DIR"] == "/var/task/models"
        module, _, attr = props["Handler"].rpartition(".")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None and Path(spec.origin).is_file()
        assert attr == "handler"
        assert "LoggingConfig" in props  # its own log group, with retention
    template.resource_properties_count_is("AWS::Logs::LogGroup", {"RetentionInDays": 30}, 6 + split)


def test_function_url_is_iam_only(template):
    template.has_resource_properties("AWS::Lambda::Url", {"AuthType": "AWS_IAM"})
    template.resource_count_is("AWS::Lambda::Url", 1)


def test_queues_are_encrypted_with_dlqs(template):
    queues = template.find_resources("AWS::SQS::Queue")
    assert len(queues) == 6  # requests, results, their DLQs, the routing and escalation DLQs
    for queue in queues.values():
        assert "KmsMasterKeyId" in queue["Properties"]
    redriven = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(redriven) == 2
    assert all(q["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 3 for q in redriven)
    template.resource_count_is("AWS::SQS::QueuePolicy", 6)  # TLS-only policies
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 100, "MaximumBatchingWindowInSeconds": 1},
    )  # both queues: up to 100 a run (a batch over 10 needs a batching window)


def test_data_bucket_is_private_encrypted_tls_only(template):
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})})
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": Match.any_value(),
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    (notifications,) = template.find_resources("Custom::S3BucketNotifications").values()
    (config,) = notifications["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"]: r["Value"] for r in config["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "incoming/", "suffix": ".jsonl"}  # results/ never re-triggers the function


@pytest.mark.parametrize("pack", PACKS)
def test_cdk_nag_has_no_unsuppressed_errors_or_warnings(synthesized, region, pack):
    app, _, _ = synthesized
    annotations = Annotations.from_stack(stack_of(app, region))
    assert annotations.find_error("*", Match.string_like_regexp(f"{pack}-.*")) == []
    assert annotations.find_warning("*", Match.string_like_regexp(f"{pack}-.*")) == []


@pytest.mark.parametrize(("pack", "rule"), [("AwsSolutions", "SQS"), ("NIST.800.53.R5", "CloudWatchLogGroupEncrypted")])
def test_cdk_nag_is_wired_to_catch_violations(pack, rule):
    app = App()
    stack = Stack(app, "Bad")
    sqs.Queue(stack, "Plain", encryption=sqs.QueueEncryption.UNENCRYPTED)
    logs.LogGroup(stack, "Unencrypted")
    apply_nag(app)
    app.synth()
    errors = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp(f"{pack}-{rule}.*"))
    assert errors


def test_the_generic_component_app_has_no_nag_or_residency_errors(generic_cloud):
    from aws_cdk import cx_api

    from infra.app import synth_errors

    assert synth_errors(cx_api.CloudAssembly(str(generic_cloud.cdk_out))) == []


def test_every_nag_suppression_gives_a_reason(synthesized):
    _, _, outdir = synthesized
    found = 0
    for path in Path(outdir).glob("*.template.json"):
        for resource in json.loads(path.read_text())["Resources"].values():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                found += 1
                assert len(rule["reason"]) >= 20, rule
    assert found


def _cdk_outs(synthesized, generic_cloud):
    """The default app, and the one whose fleets all run generic (IPC) components: both must pass."""
    return {"default": synthesized[2], "generic components": generic_cloud.cdk_out}


@pytest.mark.parametrize("variant", ["default", "generic components"])
def test_cfn_lint_finds_no_errors(synthesized, generic_cloud, variant):
    outdir = _cdk_outs(synthesized, generic_cloud)[variant]
    templates = sorted(str(p) for p in Path(outdir).glob("*.template.json"))
    assert len(templates) == len(REGIONS)
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "parseable", "--", *templates], capture_output=True, text=True
    )
    # cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational.
    assert result.returncode & 2 == 0, result.stdout


CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"  # `make setup`'s own venv for it (see the Makefile)


@pytest.mark.parametrize("variant", ["default", "generic components"])
def test_checkov_finds_no_failed_check_and_every_skip_says_why(synthesized, generic_cloud, variant):
    outdir = _cdk_outs(synthesized, generic_cloud)[variant]
    assert CHECKOV.exists(), f"{CHECKOV} is missing: `make test` installs it"
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(outdir), "--framework", "cloudformation", "--output", "json",
         "--skip-download"], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']}" for r in reports for c in r["results"].get("failed_checks", [])]
    assert result.returncode == 0 and not failed, failed or result.stderr[-2000:]
    skipped = [c for r in reports for c in r["results"].get("skipped_checks", [])]
    assert skipped and all(len(c["check_result"].get("suppress_comment", "")) > 20 for c in skipped)
    # the findings this release fixed stay fixed: reserved concurrency and the environment under the region's key
    assert not {c["check_id"] for c in skipped} & {"CKV_AWS_173"}
    assert {c["resource"].split(".")[1] for c in skipped if c["check_id"] == "CKV_AWS_115"} <= {
        r for r in _function_ids(outdir) if r.startswith(("BucketNotificationsHandler", "EdgeEdgeFunction"))
    }


def _function_ids(outdir: Any) -> set[str]:
    ids: set[str] = set()
    for template in Path(outdir).glob("*.template.json"):
        resources = json.loads(template.read_text())["Resources"]
        ids |= {lid for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    return ids


def test_asset_fits_lambda_and_holds_code_models_and_arm_wheels(synthesized):
    _, _, outdir = synthesized
    assets = [p for p in Path(outdir).glob("asset.*") if p.is_dir() and (p / "functions").is_dir()]
    (asset,) = assets
    size = sum(f.stat().st_size for f in asset.rglob("*") if f.is_file())
    assert size < 250 * 1024 * 1024  # Lambda's hard limit on an unzipped package
    assert (asset / "models" / "manifest.json").is_file()
    assert (asset / "functions" / "inference" / "http_api.py").is_file()
    assert not (asset / "botocore").exists()  # provided by the runtime
    native = list((asset / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so"))
    assert native and "aarch64" in native[0].name


def test_the_local_tables_are_keyed_as_the_stack_declares_them(synthesized, tables):
    """The demo's and the tests' tables (one definition) against the synthesized template's."""
    import boto3

    _, _, outdir = synthesized
    template = json.loads((Path(outdir) / f"{regional_stack_name('eu-central-1')}.template.json").read_text())
    resources = template["Resources"]
    in_template = {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == "AWS::DynamoDB::Table"}
    (declared,) = in_template.values()  # the aggregates table: counts, drift histograms and the counted markers
    made = boto3.client("dynamodb", region_name="eu-central-1").describe_table(TableName=tables)["Table"]
    assert made["KeySchema"] == declared["KeySchema"]
    assert sorted(made["AttributeDefinitions"], key=str) == sorted(declared["AttributeDefinitions"], key=str)
