"""Template assertions for the edge fleets, IoT routing and aggregation of every regional stack."""

import base64
import hashlib
import json

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Match, Template

from domicile.manifest import load_manifest
from domicile.topology import FleetMode, load_topology
from infra.app import regional_stack_name
from tests.conftest import MODELS

TOPOLOGY = load_topology()
EDGE = load_manifest(MODELS).models["digits-edge"]


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


def test_model_component_recipe_has_in_region_artifacts_with_digests(template, stack):
    (model,) = [
        c for c in by_type(template, "AWS::GreengrassV2::ComponentVersion") if "InlineRecipe" in c["Properties"]
    ]
    text = json.dumps(model["Properties"]["InlineRecipe"])
    digest = base64.b64encode(hashlib.sha256((MODELS / EDGE.file).read_bytes()).digest()).decode()
    assert digest in text and "SHA-256" in text
    assert '"ComponentName\\":\\"com.domicile.model.digits-edge' in text.replace(" ", "")
    assert "cdk-hnb659fds-assets-" in text and stack.region in text  # the region's own asset bucket


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
        assert env["HOME_REGION"] == region and env["MODEL_DIR"].endswith("com.domicile.model.digits-edge/1.0.0")
        assert "com.domicile.model.digits-edge" in component["ComponentDependencies"]
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
        assert set(props["Components"]) >= {"com.domicile.model.digits-edge"}
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
        if fleet.mode is FleetMode.CLOUD_ONLY:
            assert own + "escalate" in document and own + "*" not in document


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
