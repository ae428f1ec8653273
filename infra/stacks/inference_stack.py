"""One region's cloud inference: key, bucket, queues and the inference function."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack, Tags
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from domicile.topology import ModelRole, Topology
from infra.constructs.inference_function import FUNCTION_TIMEOUT, InferenceFunction, InferenceFunctionProps
from infra.constructs.storage import DataBucket, QueueWithDlq, RegionalKey


class RegionalInferenceStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        region: str,
        account: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id, env=Environment(account=account, region=region))
        self.jurisdiction = topology.jurisdiction_of_region(region)
        Tags.of(self).add("domicile:jurisdiction", self.jurisdiction)
        Tags.of(self).add("domicile:region", region)

        key = RegionalKey(self, "DataKey", description=f"domicile {self.jurisdiction} data in {region}").key
        storage = DataBucket(self, "Data", key=key)
        # SQS wants the visibility timeout to be at least 6x the consumer's timeout.
        visibility = Duration.seconds(FUNCTION_TIMEOUT.to_seconds() * 6)
        self.requests = QueueWithDlq(self, "Requests", key=key, visibility_timeout=visibility)
        self.results = QueueWithDlq(self, "Results", key=key, visibility_timeout=visibility)

        self.inference = InferenceFunction(
            self,
            "Inference",
            props=InferenceFunctionProps(
                jurisdiction=self.jurisdiction,
                default_model=topology.model_for(ModelRole.CLOUD).name,
                key=key,
                bucket=storage.bucket,
                request_queue=self.requests.queue,
                results_queue=self.results.queue,
            ),
        )
        self.bucket = storage.bucket
        CfnOutput(self, "BucketName", value=storage.bucket.bucket_name)
        CfnOutput(self, "RequestQueueUrl", value=self.requests.queue.queue_url)
        CfnOutput(self, "ResultsQueueUrl", value=self.results.queue.queue_url)

        # The S3 notification custom resource is CDK's own singleton function.
        NagSuppressions.add_resource_suppressions_by_path(
            self,
            f"/{self.node.path}/BucketNotificationsHandler050a0587b7544547bf325f094a3db834/Role/Resource",
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4", reason="CDK's bucket-notification handler, basic execution role."
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="CDK's bucket-notification handler needs s3:PutBucketNotification on *.",
                ),
            ],
        )
