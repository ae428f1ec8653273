"""One home region: cloud inference, edge fleets, IoT routing and aggregation, pinned to the region."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack, Tags
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from domicile.config.topology import FleetMode, Topology
from domicile.models.registry import Manifest
from domicile.wire.keys import model_key
from infra.aspects.residency import pin_jurisdiction
from infra.constructs.aggregation import Aggregation, AggregationProps
from infra.constructs.alarms import AlarmTopic
from infra.constructs.backup import InRegionBackup
from infra.constructs.edge_fleet import EdgeFleetProps, EdgeFleets
from infra.constructs.inference_function import FUNCTION_TIMEOUT, InferenceFunction, InferenceFunctionProps
from infra.constructs.routing import Routing, RoutingProps
from infra.constructs.storage import DataBucket, QueueWithDlq, RegionalKey


class RegionalStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        manifest: Manifest,
        region: str,
        account: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id, env=Environment(account=account, region=region))
        self.jurisdiction = topology.jurisdiction_of_region(region)
        cloud_models = topology.cloud_models_in(region)  # fleet -> the cloud model answering its escalations
        split_model = topology.split_model()
        has_split_fleets = any(f.mode is FleetMode.SPLIT for f in topology.fleets_in(region))
        pin_jurisdiction(self, self.jurisdiction)
        Tags.of(self).add("domicile:region", region)

        key = RegionalKey(self, "DataKey", description=f"domicile {self.jurisdiction} data in {region}").key
        storage = DataBucket(self, "Data", key=key)
        # SQS wants the visibility timeout to be at least 6x the consumer's timeout.
        visibility = Duration.seconds(FUNCTION_TIMEOUT.to_seconds() * 6)
        self.requests = QueueWithDlq(self, "Requests", key=key, visibility_timeout=visibility)
        self.results = QueueWithDlq(self, "Results", key=key, visibility_timeout=visibility)
        # Where IoT rule actions that failed, and async invocations (escalations, split tails, S3
        # batches) that failed all retries, are kept.
        self.routing_dlq = _dead_letter_queue(self, "RoutingDlq", key)
        self.escalation_dlq = _dead_letter_queue(self, "EscalationDlq", key)

        self.inference = InferenceFunction(
            self,
            "Inference",
            props=InferenceFunctionProps(
                jurisdiction=self.jurisdiction,
                default_model=next(iter(cloud_models.values())),
                fleet_models=cloud_models,
                key=key,
                bucket=storage.bucket,
                request_queue=self.requests.queue,
                results_queue=self.results.queue,
                escalation_dlq=self.escalation_dlq,
                allowed_regions=topology.regions_of(self.jurisdiction),
                split_model=split_model.name if split_model and has_split_fleets else None,
                split_cut=split_model.cut if split_model and has_split_fleets else None,
                model_versions=",".join(model_key(e.name, e.version) for e in manifest.models.values()),
                concurrency=topology.concurrency,
            ),
        )
        self.aggregation = Aggregation(
            self,
            "Aggregation",
            props=AggregationProps(
                jurisdiction=self.jurisdiction,
                key=key,
                bucket=storage.bucket,
                results_queue=self.results.queue,
                timeout=FUNCTION_TIMEOUT,
                allowed_regions=topology.regions_of(self.jurisdiction),
                fleets=tuple(f.name for f in topology.fleets_in(region)),
                concurrency=topology.concurrency.aggregate,
            ),
        )
        self.routing = Routing(
            self,
            "Routing",
            props=RoutingProps(
                jurisdiction=self.jurisdiction,
                results_queue=self.results.queue,
                escalate_function=self.inference.escalate_live,
                error_queue=self.routing_dlq,
                request_queue=self.requests.queue,
                split_function=self.inference.split_tail_live,
                paths={kind: topology.cloud_paths_in(region, kind) for kind in ("escalate", "split")},
            ),
        )
        self.edge = EdgeFleets(
            self,
            "Edge",
            props=EdgeFleetProps(
                jurisdiction=self.jurisdiction,
                fleets=topology.fleets_in(region),
                models={f.name: manifest.models[topology.edge_model_of(f)] for f in topology.fleets_in(region)},
                key=key,
                split=split_model,
            ),
        )
        self.backup = InRegionBackup(self, "Backup", key=key, tables=[self.aggregation.aggregates])
        self.alarms = AlarmTopic(self, "Alarms", key=key)
        self.alarms.notify_on_every_alarm(self)
        self.bucket = storage.bucket
        CfnOutput(self, "BucketName", value=storage.bucket.bucket_name)
        CfnOutput(self, "RequestQueueUrl", value=self.requests.queue.queue_url)
        CfnOutput(self, "ResultsQueueUrl", value=self.results.queue.queue_url)
        CfnOutput(self, "AggregatesTable", value=self.aggregation.aggregates.table_name)
        CfnOutput(self, "TokenExchangeRoleAlias", value=self.edge.role_alias.ref)
        CfnOutput(self, "AlarmTopicArn", value=self.alarms.topic.topic_arn, description="Subscribe to hear of alarms")

        # The S3 notification custom resource is CDK's own singleton function.
        NagSuppressions.add_resource_suppressions_by_path(
            self,
            f"/{self.node.path}/BucketNotificationsHandler050a0587b7544547bf325f094a3db834/Role/Resource",
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4", reason="CDK's bucket-notification handler: basic execution."
                ),
                NagPackSuppression(id="AwsSolutions-IAM5", reason="CDK's handler needs s3:PutBucketNotification on *."),
            ],
        )


def _dead_letter_queue(scope: Construct, construct_id: str, key: kms.IKey) -> sqs.Queue:
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    NagSuppressions.add_resource_suppressions(
        queue,
        [NagPackSuppression(id="AwsSolutions-SQS3", reason="This queue is itself a dead-letter queue.")],
    )
    return queue
