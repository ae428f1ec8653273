"""In-region aggregation: the aggregate function on the results queue, its tables and archive.

It also measures input drift (PSI against each model's training inputs, see domicile.models.drift) as the
`ModelDrift` metric per fleet; one alarm per fleet fires above the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from domicile.cloud.aggregation import ARCHIVE_PREFIX
from domicile.config.topology import Concurrency
from domicile.models.drift import DRIFT_THRESHOLD
from domicile.wire.keys import AGGREGATES_KEY, AGGREGATES_TTL
from infra.bundling import python_function_code
from infra.constructs.nag import suppress_lambda_defaults
from infra.constructs.storage import function_log_group

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64


@dataclass(frozen=True)
class AggregationProps:
    jurisdiction: str
    key: kms.IKey
    bucket: s3.IBucket
    results_queue: sqs.IQueue
    timeout: Duration
    allowed_regions: tuple[str, ...]
    fleets: tuple[str, ...] = ()  # fleets homed here: one drift alarm each
    drift_threshold: float = DRIFT_THRESHOLD
    concurrency: int = Concurrency().aggregate


class Aggregation(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: AggregationProps) -> None:
        super().__init__(scope, construct_id)

        def table(name: str, partition: str, sort: str | None, ttl: str) -> dynamodb.Table:
            return dynamodb.Table(
                self,
                name,
                partition_key=dynamodb.Attribute(name=partition, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=sort, type=dynamodb.AttributeType.STRING) if sort else None,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=props.key,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                time_to_live_attribute=ttl,
                removal_policy=RemovalPolicy.RETAIN,
            )

        # Count and drift rows by hour, and the per-message "counted" markers (domicile.wire.keys).
        self.aggregates = table("Aggregates", *AGGREGATES_KEY, AGGREGATES_TTL)

        log_group = function_log_group(self, "Logs", key=props.key)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Aggregates result envelopes per fleet/device/model/hour",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="functions.aggregate.handler.handler",
            code=python_function_code(RUNTIME, ARCHITECTURE),
            memory_size=512,
            reserved_concurrent_executions=props.concurrency,
            environment_encryption=props.key,  # the region's own key, as every store of the region
            timeout=props.timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment={
                "JURISDICTION": props.jurisdiction,
                "AGGREGATES_TABLE": self.aggregates.table_name,
                "ARCHIVE_BUCKET": props.bucket.bucket_name,
                "ALLOWED_REGIONS": ",".join(props.allowed_regions),
                "MODEL_DIR": "/var/task/models",  # the manifest's drift baselines
                "POWERTOOLS_SERVICE_NAME": "domicile-aggregate",
                "POWERTOOLS_METRICS_NAMESPACE": "Domicile",
            },
        )
        self.function.add_event_source(
            sources.SqsEventSource(
                props.results_queue,
                batch_size=100,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
                max_concurrency=props.concurrency,  # never more batches than the function may run: no throttling
            )
        )
        self.aggregates.grant_read_write_data(self.function)
        props.bucket.grant_put(self.function, f"{ARCHIVE_PREFIX}*")
        props.bucket.grant_put(self.function, "quarantine/*")  # residency violations, kept in-region
        suppress_lambda_defaults(
            self.function,
            [
                {"regex": "/^Resource::<.*Bucket.*\\.Arn>/(archive|quarantine)/\\*$/g"},
                {"regex": "/^Resource::<.*Aggregates.*\\.Arn>/index/\\*$/g"},
            ],
        )

        self.drift_alarms: dict[str, cloudwatch.Alarm] = {}
        for fleet in props.fleets:
            metric = cloudwatch.Metric(
                namespace="Domicile", metric_name="ModelDrift", dimensions_map={"Fleet": fleet},
                statistic="Maximum", period=Duration.minutes(5),
            )  # fmt: skip
            self.drift_alarms[fleet] = metric.create_alarm(
                self,
                f"Drift{''.join(p.capitalize() for p in fleet.split('-'))}",
                alarm_description=f"Inputs of fleet {fleet} drifted from the model's training inputs (PSI)",
                threshold=props.drift_threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
