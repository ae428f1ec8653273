"""Template assertions for the edge fleets, IoT routing and aggregation of every regional stack."""

import base64
import hashlib
import json
import zipfile

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Match, Template

from domicile.config.topology import FleetMode, load_topology
from domicile.models.registry import load_manifest
from domicile.split.model import split_entry
from infra.app import regional_stack_name
from infra.greengrass import PINNED_VERSIONS
from tests.conftest import MODELS

TOPOLOGY = load_topology()
EDGE = load_manifest(MODELS).models["digits-edge"]
_split = TOPOLOGY.split_model()
if _split is None:
    raise RuntimeError("these tests expect domicile.toml to deploy a split model")
SPLIT = _split
_, SPLIT_SPEC = split_entry(load_manifest(MODELS), SPLIT.name)


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


def _recipes(template):
    out = {}
    for component in by_type(template, "AWS::GreengrassV2::ComponentVersion"):
        if "InlineRecipe" in component["Properties"]:
            joined = component["Properties"]["InlineRecipe"]["Fn::Join"][1]
            text = "".join(part if isinstance(part, str) else "cdk-hnb659fds-assets-ACCOUNT-REGION" for part in joined)
            recipe = json.loads(text)
            out[recipe["ComponentName"]] = recipe
    return out


def _asset_file(outdir, stack, object_key):
    manifest = json.loads((outdir / f"{stack.stack_name}.assets.json").read_text())
    for asset in manifest["files"].values():
        if any(d["objectKey"] == object_key for d in asset["destinations"].values()):
            return outdir / asset["source"]["path"]
    raise AssertionError(f"{object_key} is not an asset of {stack.stack_name}")


def test_model_components_ship_one_zip_whose_files_are_the_registry_files(template, stack, region, synthesized):
    recipes = {name: r for name, r in _recipes(template).items() if name.startswith("com.domicile.model.")}
    expected = {"com.domicile.model.digits-edge": [MODELS / EDGE.file, MODELS / "manifest.json"]}
    if _has_split_fleets(region):  # the split fleets' devices get the head at the topology's cut, nothing more
        head = SPLIT_SPEC.parts[f"{SPLIT.cut}/head"]
        expected["com.domicile.model.digits-deep-head"] = [MODELS / head.file, MODELS / "manifest.json"]
    assert set(recipes) == set(expected)
    for name, files in expected.items():
        (manifest,) = recipes[name]["Manifests"]
        (artifact,) = manifest["Artifacts"]
        assert artifact["Unarchive"] == "ZIP" and artifact["Algorithm"] == "SHA-256"
        assert artifact["Uri"].startswith("s3://cdk-hnb659fds-assets-")  # the region's own asset bucket
        archive = _asset_file(synthesized[2], stack, artifact["Uri"].rsplit("/", 1)[-1])
        assert artifact["Digest"] == _digest(archive)
        with zipfile.ZipFile(archive) as zipped:
            assert {i.filename: zipped.read(i) for i in zipped.infolist()} == {f.name: f.read_bytes() for f in files}
        assert "tail.onnx" not in json.dumps(recipes[name])  # the tail never leaves the cloud


def _model_component_of(fleet):
    return "com.domicile.model." + ("digits-deep-head" if fleet.mode is FleetMode.SPLIT else "digits-edge")


def test_one_pinned_lambda_component_per_fleet_reading_the_model_where_the_nucleus_unpacks_it(template, region):
    fleets = TOPOLOGY.fleets_in(region)
    recipes = _recipes(template)
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
        model = _model_component_of(fleet)
        (artifact,) = recipes[model]["Manifests"][0]["Artifacts"]
        stem = artifact["Uri"].rsplit("/", 1)[-1].rsplit(".", 1)[0]  # the archive's name without its extension
        assert env["HOME_REGION"] == region and env["MODEL_DIR"] == f"{{{model}:artifacts:decompressedPath}}/{stem}"
        assert env["SPOOL_DIR"] == "{work:path}/spool"
        deps = component["ComponentDependencies"]
        assert deps[model]["DependencyType"] == "HARD"
        assert deps["aws.greengrass.Nucleus"]["VersionRequirement"] == ">=2.6.0 <3.0.0"  # PUB_SUB wildcards
        assert deps["aws.greengrass.LambdaManager"]["VersionRequirement"] == ">=2.2.5 <3.0.0"
        assert "aws.greengrass.LegacySubscriptionRouter" in deps
        if fleet.mode is FleetMode.SPLIT:
            split = (env["MODEL_NAME"], env["SPLIT_CUT"], env["SPLIT_ENCODING"])
            assert split == (SPLIT.name, SPLIT.cut, SPLIT.encoding)
        assert ":" in json.dumps(component["LambdaArn"])  # a published version, never $LATEST


def test_deployment_per_fleet_pins_its_components_routes_its_topics_and_can_abort(template, region):
    deployments = by_type(template, "AWS::GreengrassV2::Deployment")
    assert len(deployments) == len(TOPOLOGY.fleets_in(region))
    for deployment in deployments:
        props = deployment["Properties"]
        assert props["DeploymentPolicies"]["FailureHandlingPolicy"] == "ROLLBACK"
        job = props["IotJobConfiguration"]
        assert job["JobExecutionsRolloutConfig"]["ExponentialRate"]["BaseRatePerMinute"] == 5
        (criteria,) = job["AbortConfig"]["CriteriaList"]
        assert criteria["Action"] == "CANCEL"
        assert job["TimeoutConfig"]["InProgressTimeoutInMinutes"] == 30
        assert "Fn::GetAtt" in props["TargetArn"]  # the fleet's thing group
        fleet = TOPOLOGY.fleets[props["DeploymentName"].removeprefix("domicile-")]
        # IoT jobs abort only once more than this many devices ran the job: below the fleet size
        assert 1 <= criteria["MinNumberOfExecutedThings"] < max(fleet.devices, 2)
        components = props["Components"]
        edge = f"com.domicile.edge.{fleet.name}"
        assert set(components) == {_model_component_of(fleet), edge, *PINNED_VERSIONS}
        for name, version in PINNED_VERSIONS.items():
            assert components[name]["ComponentVersion"] == version
        nucleus = json.loads(components["aws.greengrass.Nucleus"]["ConfigurationUpdate"]["Merge"])
        assert nucleus == {"interpolateComponentConfiguration": True}
        router = json.loads(components["aws.greengrass.LegacySubscriptionRouter"]["ConfigurationUpdate"]["Merge"])
        subscriptions = router["subscriptions"]
        assert all(sid == sub["id"] and sub["source"] == f"component:{edge}" and sub["target"] == "cloud"
                   for sid, sub in subscriptions.items())  # fmt: skip
        kinds = {FleetMode.CLOUD_ONLY: {"escalate"}, FleetMode.SPLIT: {"split"}}.get(fleet.mode, {"result", "escalate"})
        own = f"domicile/{fleet.jurisdiction}/{fleet.name}/{{iot:thingName}}/"  # the device's own topics only
        assert {sub["subject"] for sub in subscriptions.values()} == {own + kind for kind in kinds}
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


def test_token_exchange_role_reads_each_artifact_key_and_nothing_else_of_the_bucket(template):
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
    statements = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
    assert all(st["Resource"] != "*" for st in statements)
    s3 = [st for st in statements if any(str(a).startswith("s3:") for a in _list(st["Action"]))]
    keys = {json.dumps(r) for st in s3 if st["Action"] == "s3:GetObject" for r in _list(st["Resource"])}
    recipes = _recipes(template)
    artifacts = [a["Uri"].rsplit("/", 1)[-1] for r in recipes.values() for m in r["Manifests"] for a in m["Artifacts"]]
    assert len(keys) == len(artifacts) and all(any(key in k for k in keys) for key in artifacts)
    assert all("*" not in json.dumps(st["Resource"]) for st in s3)  # each object's key, never the bucket's /*
    assert {st["Action"] for st in s3} == {"s3:GetObject", "s3:GetBucketLocation"}  # the nucleus asks both


def _list(value):
    return value if isinstance(value, list) else [value]


def test_topic_rules_route_by_kind_with_error_actions(template, region):
    jurisdiction = TOPOLOGY.jurisdiction_of_region(region)
    rules = {
        r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"]
        for r in by_type(template, "AWS::IoT::TopicRule")
    }
    result, escalate = rules[f"domicile_{jurisdiction}_result"], rules[f"domicile_{jurisdiction}_escalate"]
    assert result["Sql"] == f"SELECT * FROM 'domicile/{jurisdiction}/+/+/result'"
    assert escalate["Sql"] == f"SELECT * FROM 'domicile/{jurisdiction}/+/+/escalate'"
    # Escalations take the queued path (the default): the request queue, answered a batch at a time.
    (requests_queue,) = [lid for lid in template.find_resources("AWS::SQS::Queue") if lid.startswith("Requests")
                         and "Dlq" not in lid]  # fmt: skip
    assert "Sqs" in result["Actions"][0]
    assert escalate["Actions"][0]["Sqs"]["QueueUrl"] == {"Ref": requests_queue}
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
        assert tail["Environment"]["Variables"]["SPLIT_MODEL"] == SPLIT.name
        assert tail["Environment"]["Variables"]["SPLIT_CUT"] == SPLIT.cut
    invoked = [p["Properties"]["FunctionName"] for p in by_type(template, "AWS::Lambda::Permission")
               if p["Properties"]["Principal"] == "iot.amazonaws.com"]  # fmt: skip
    assert len(invoked) == (split is not None)  # only the split fleet's direct path invokes a function
    if split is not None:
        template.has_resource_properties(
            "AWS::Lambda::Permission", {"Principal": "iot.amazonaws.com", "SourceArn": Match.any_value()}
        )
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"MaximumRetryAttempts": 2, "DestinationConfig": {"OnFailure": {"Destination": Match.any_value()}}},
    )


def test_aggregation_tables_and_event_source(template):
    tables = by_type(template, "AWS::DynamoDB::Table")
    assert len(tables) == 1  # counts, drift histograms and the counted markers share one table
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
    expected = (r"models\.digits-deep\.cut: the registry has no head of digits-deep 1\.0\.0 at 'hidden3'; "
                r"run `domicile split partition --model digits-deep --cut hidden3`")  # fmt: skip
    with pytest.raises(ConfigError, match=expected):
        ModelArtifacts.split_head(placement, MODELS)


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


def test_fleets_of_one_region_on_both_cloud_paths_get_a_rule_each_on_their_own_topics(tmp_path):
    from domicile.config.topology import CloudPath
    from infra.app import build_app

    fleets = {**TOPOLOGY.fleets}
    fleets["munich-line"] = fleets["munich-line"].model_copy(update={"cloud_path": CloudPath.DIRECT})
    fleets["berlin-depot"] = fleets["berlin-depot"].model_copy(update={"mode": FleetMode.HYBRID})  # queued
    topology = TOPOLOGY.model_copy(update={"fleets": fleets})
    app = build_app(topology, outdir=str(tmp_path))
    stack = app.node.find_child(regional_stack_name("eu-central-1"))
    assert isinstance(stack, Stack)
    rules = {r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"]
             for r in Template.from_stack(stack).find_resources("AWS::IoT::TopicRule").values()}  # fmt: skip
    direct, queued = rules["domicile_eu_escalate_munich_line"], rules["domicile_eu_escalate_berlin_depot"]
    assert direct["Sql"] == "SELECT * FROM 'domicile/eu/munich-line/+/escalate'" and "Lambda" in direct["Actions"][0]
    assert queued["Sql"] == "SELECT * FROM 'domicile/eu/berlin-depot/+/escalate'" and "Sqs" in queued["Actions"][0]
    assert "domicile_eu_escalate" not in rules  # no jurisdiction-wide rule beside the fleets' own
    assert all("Sqs" in p["ErrorAction"] for p in rules.values())
