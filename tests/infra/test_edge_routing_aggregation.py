"""Template assertions for the edge fleets, IoT routing and aggregation of every regional stack."""

import base64
import hashlib
import json

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Match, Template

from domicile.manifest import load_manifest
from domicile.split.model import load_split_manifest
from domicile.topology import FleetMode, load_topology
from infra.app import regional_stack_name
from tests.conftest import MODELS

TOPOLOGY = load_topology()
EDGE = load_manifest(MODELS).models["digits-edge"]
_split = TOPOLOGY.split_model()
if _split is None:
    raise RuntimeError("these tests expect domicile.toml to deploy a split model")
SPLIT = _split
SPLIT_MANIFEST = load_split_manifest(MODELS / "split")


@pytest.fixture(params=TOPOLOGY.home_regions())
def region(request):
    return request.param


@pytest.fixture
def stack(synthesized, region) -> Stack:
    app, _, _ = synthesized
    found = app.node.find_child(regional_stack_name(region))
    assert isinstance(found, Stack)
    return found


@pytest.fixture
def template(stack) -> Template:
    return Template.from_stack(stack)


def by_type(template, kind):
    return list(template.find_resources(kind).values())


def _digest(path):
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def _has_split_fleets(region):
    return any(f.mode is FleetMode.SPLIT for f in TOPOLOGY.fleets_in(region))


def test_model_component_recipes_have_in_region_artifacts_with_digests(template, stack, region):
    recipes = {}
    for component in by_type(template, "AWS::GreengrassV2::ComponentVersion"):
        if "InlineRecipe" in component["Properties"]:
            text = json.dumps(component["Properties"]["InlineRecipe"])
            recipes[text.split('ComponentName\\":\\"', 1)[1].split("\\", 1)[0]] = text
    expected = {"com.domicile.model.digits-edge": [MODELS / EDGE.file, MODELS / "manifest.json"]}
    if _has_split_fleets(region):  # the split fleets' devices get the head at the topology's cut, nothing more
        head = SPLIT_MANIFEST.parts[f"{SPLIT.cut}/head"]
        expected["com.domicile.model.digits-deep-head"] = [MODELS / "split" / head.file, MODELS / "split/manifest.json"]
    assert set(recipes) == set(expected)
    for name, files in expected.items():
        text = recipes[name]
        assert all(_digest(f) in text for f in files) and text.count("SHA-256") == len(files)
        assert "cdk-hnb659fds-assets-" in text and stack.region in text  # the region's own asset bucket
        assert "tail.onnx" not in text  # the tail never leaves the cloud


def test_one_pinned_lambda_component_per_fleet(template, region):
    fleets = TOPOLOGY.fleets_in(region)
    lambdas = [c["Properties"]["LambdaFunction"] for c in by_type(template, "AWS::GreengrassV2::ComponentVersion")
               if "LambdaFunction" in c["Properties"]]  # fmt: skip
    assert sorted(c["ComponentName"] for c in lambdas) == sorted(f"com.domicile.edge.{f.name}" for f in fleets)
    for component in lambdas:
        params = component["ComponentLambdaParameters"]
        fleet = TOPOLOGY.fleets[component["ComponentName"].rsplit(".", 1)[1]]
        assert params["Pinned"] is True
        assert params["EventSources"] == [{"Topic": "domicile/local/+/input", "Type": "PUB_SUB"}]
        env = params["EnvironmentVariables"]
        assert env["MODE"] == fleet.mode.value and env["JURISDICTION"] == fleet.jurisdiction
        model = "digits-deep-head" if fleet.mode is FleetMode.SPLIT else "digits-edge"
        assert env["HOME_REGION"] == region and env["MODEL_DIR"].endswith(f"com.domicile.model.{model}/1.0.0")
        assert f"com.domicile.model.{model}" in component["ComponentDependencies"]
        if fleet.mode is FleetMode.SPLIT:
            assert (env["SPLIT_CUT"], env["SPLIT_ENCODING"]) == (SPLIT.cut, SPLIT.encoding)
        assert ":" in json.dumps(component["LambdaArn"])  # a published version, never $LATEST


def test_deployment_per_fleet_with_staged_rollout_abort_and_rollback(template, region):
    deployments = by_type(template, "AWS::GreengrassV2::Deployment")
    assert len(deployments) == len(TOPOLOGY.fleets_in(region))
    for deployment in deployments:
        props = deployment["Properties"]
        assert props["DeploymentPolicies"]["FailureHandlingPolicy"] == "ROLLBACK"
        job = props["IotJobConfiguration"]
        assert job["JobExecutionsRolloutConfig"]["ExponentialRate"]["BaseRatePerMinute"] == 5
        assert job["AbortConfig"]["CriteriaList"][0]["Action"] == "CANCEL"
        assert job["TimeoutConfig"]["InProgressTimeoutInMinutes"] == 30
        assert "Fn::GetAtt" in props["TargetArn"]  # the fleet's thing group
        fleet = TOPOLOGY.fleets[props["DeploymentName"].removeprefix("domicile-")]
        model = "digits-deep-head" if fleet.mode is FleetMode.SPLIT else "digits-edge"
        assert set(props["Components"]) == {f"com.domicile.model.{model}", f"com.domicile.edge.{fleet.name}"}
    groups = {g["Properties"]["ThingGroupName"] for g in by_type(template, "AWS::IoT::ThingGroup")}
    assert groups == {f"domicile-{f.name}" for f in TOPOLOGY.fleets_in(region)}


def test_device_policies_allow_only_own_topics(template, region):
    policies = {
        p["Properties"]["PolicyName"]: p["Properties"]["PolicyDocument"] for p in by_type(template, "AWS::IoT::Policy")
    }
    for fleet in TOPOLOGY.fleets_in(region):
        document = json.dumps(policies[f"domicile-{fleet.name}-device"])
        own = f"domicile/{fleet.jurisdiction}/{fleet.name}/${{iot:Connection.Thing.ThingName}}/"
        assert own in document
        assert "domicile/#" not in document and f"domicile/{fleet.jurisdiction}/+/" not in document
        assert "client/${iot:Connection.Thing.ThingName}" in document
        only = {FleetMode.CLOUD_ONLY: "escalate", FleetMode.SPLIT: "split"}.get(fleet.mode)
        if only:
            assert own + only in document and own + "*" not in document


def test_token_exchange_role_alias_reads_only_the_artifacts(template):
    template.has_resource_properties("AWS::IoT::RoleAlias", {"CredentialDurationSeconds": 3600})
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "credentials.iot.amazonaws.com"}})]
            }
        },
    )
    policies = [
        p for p in by_type(template, "AWS::IAM::Policy") if "TokenExchange" in json.dumps(p["Properties"]["Roles"])
    ]
    (policy,) = policies
    text = json.dumps(policy)
    assert "s3:GetObject" in text and "/aws/greengrass/*" in text
    allows = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
    assert all(st["Resource"] != "*" for st in allows)


def test_topic_rules_route_by_kind_with_error_actions(template, region):
    jurisdiction = TOPOLOGY.jurisdiction_of_region(region)
    rules = {
        r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"]
        for r in by_type(template, "AWS::IoT::TopicRule")
    }
    result, escalate = rules[f"domicile_{jurisdiction}_result"], rules[f"domicile_{jurisdiction}_escalate"]
    assert result["Sql"] == f"SELECT * FROM 'domicile/{jurisdiction}/+/+/result'"
    assert escalate["Sql"] == f"SELECT * FROM 'domicile/{jurisdiction}/+/+/escalate'"
    assert "Sqs" in result["Actions"][0] and "Lambda" in escalate["Actions"][0]
    for payload in (result, escalate):
        assert "Sqs" in payload["ErrorAction"]
        assert payload["ErrorAction"]["Sqs"]["QueueUrl"] != result["Actions"][0]["Sqs"]["QueueUrl"]
    split = rules.get(f"domicile_{jurisdiction}_split")
    assert (split is not None) == _has_split_fleets(region)  # a tail only where split fleets live
    if split is not None:
        assert split["Sql"] == f"SELECT * FROM 'domicile/{jurisdiction}/+/+/split'" and "Sqs" in split["ErrorAction"]
        (tail_id,) = template.find_resources(
            "AWS::Lambda::Function", {"Properties": {"Handler": "functions.inference.split_tail.handler"}}
        )
        (alias_id,) = template.find_resources("AWS::Lambda::Alias", {"Properties": {"FunctionName": {"Ref": tail_id}}})
        assert split["Actions"][0]["Lambda"]["FunctionArn"] == {"Ref": alias_id}  # the tail's live alias
        tail = template.find_resources("AWS::Lambda::Function")[tail_id]["Properties"]
        assert tail["Environment"]["Variables"]["SPLIT_CUT"] == SPLIT.cut
    invoked = [p["Properties"]["FunctionName"] for p in by_type(template, "AWS::Lambda::Permission")
               if p["Properties"]["Principal"] == "iot.amazonaws.com"]  # fmt: skip
    assert len(invoked) == 1 + (split is not None)
    template.has_resource_properties(
        "AWS::Lambda::Permission", {"Principal": "iot.amazonaws.com", "SourceArn": Match.any_value()}
    )
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"MaximumRetryAttempts": 2, "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}}},
    )


def test_aggregation_tables_and_event_source(template):
    tables = by_type(template, "AWS::DynamoDB::Table")
    assert len(tables) == 2
    for table in tables:
        props = table["Properties"]
        assert props["SSESpecification"]["SSEEnabled"] is True and "KMSMasterKeyId" in props["SSESpecification"]
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["TimeToLiveSpecification"]["Enabled"] is True
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 100},
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "functions.aggregate.handler.handler",
            "Environment": {"Variables": Match.object_like({"ARCHIVE_BUCKET": Match.any_value()})},
        },
    )


def test_a_split_fleet_whose_cut_was_never_partitioned_fails_synth_naming_the_key():
    from domicile.errors import ConfigError
    from infra.constructs.edge_fleet import ModelArtifacts

    placement = SPLIT.model_copy(update={"cut": "hidden3"})
    with pytest.raises(ConfigError, match=r"models\.digits-deep\.cut: .* no head at 'hidden3'; run `domicile split"):
        ModelArtifacts.split_head(placement, MODELS / "split")


def test_one_drift_alarm_per_fleet_on_the_metric_the_aggregate_function_writes(template, region):
    alarms = {
        a["Properties"]["Dimensions"][0]["Value"]: a["Properties"]
        for a in by_type(template, "AWS::CloudWatch::Alarm")
        if a["Properties"].get("MetricName") == "ModelDrift"
    }
    assert set(alarms) == {f.name for f in TOPOLOGY.fleets_in(region)}
    for fleet, alarm in alarms.items():
        assert alarm["Namespace"] == "Domicile" and alarm["Dimensions"] == [{"Name": "Fleet", "Value": fleet}]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0.2, "GreaterThanThreshold")
        assert alarm["Statistic"] == "Maximum" and alarm["TreatMissingData"] == "notBreaching"
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "functions.aggregate.handler.handler",
         "Environment": {"Variables": Match.object_like({"MODEL_DIR": "/var/task/models"})}},
    )  # fmt: skip


def test_every_inference_function_rolls_out_as_a_canary_with_alarms_and_automatic_rollback(template, region):
    functions = template.find_resources("AWS::Lambda::Function")
    inference = {lid for lid, f in functions.items()
                 if f["Properties"].get("Handler", "").startswith("functions.inference.")}  # fmt: skip
    aliases = {a["Properties"]["FunctionName"]["Ref"]: lid
               for lid, a in template.find_resources("AWS::Lambda::Alias").items()}  # fmt: skip
    assert set(aliases) == inference and all(
        template.find_resources("AWS::Lambda::Alias")[lid]["Properties"]["Name"] == "live" for lid in aliases.values()
    )
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    groups = list(template.find_resources("AWS::CodeDeploy::DeploymentGroup").values())
    assert len(groups) == len(inference)
    for group in groups:
        props = group["Properties"]
        assert props["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        assert set(props["AutoRollbackConfiguration"]["Events"]) == {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"}
        watched = [alarms[a["Name"]["Ref"]]["Properties"] for a in props["AlarmConfiguration"]["Alarms"]]
        assert sorted((a["MetricName"], a.get("Statistic") or a.get("ExtendedStatistic")) for a in watched) == [
            ("Duration", "p99"), ("Errors", "Sum")]  # fmt: skip
        assert all(any(d["Name"] == "Resource" for d in a["Dimensions"]) for a in watched)  # the alias' metrics
    # callers invoke the alias, never $LATEST
    rules = by_type(template, "AWS::IoT::TopicRule")
    for rule in rules:
        action = rule["Properties"]["TopicRulePayload"]["Actions"][0]
        if "Lambda" in action:
            assert action["Lambda"]["FunctionArn"]["Ref"] in aliases.values()
    (url,) = by_type(template, "AWS::Lambda::Url")
    assert url["Properties"]["Qualifier"] == "live"
    # the registry's deployed model versions are part of each function's configuration, so of its version
    deployed = ",".join(f"{e.name}@{e.version}" for e in load_manifest(MODELS).models.values())
    for lid in inference:
        assert functions[lid]["Properties"]["Environment"]["Variables"]["MODEL_VERSIONS"] == deployed
