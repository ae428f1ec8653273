"""The cloud inference functions: one asset, one function per entry point.

HTTP (OIP v2), SQS batch, S3 JSON lines, IoT escalations, and (in regions with split fleets) the
split tail, which finishes what the devices' heads started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from domicile.config.topology import Concurrency
from infra.bundling import python_function_code
from infra.constructs.canary import CanaryRelease
from infra.constructs.nag import suppress_lambda_defaults
from infra.constructs.storage import function_log_group

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
FUNCTION_TIMEOUT = Duration.seconds(30)
INPUT_PREFIX = "incoming/"
OUTPUT_PREFIX = "results/"
QUARANTINE_PREFIX = "quarantine/"


@dataclass(frozen=True)
class InferenceFunctionProps:
    jurisdiction: str
    default_model: str
    key: kms.IKey
    bucket: s3.IBucket
    request_queue: sqs.IQueue
    results_queue: sqs.IQueue
    escalation_dlq: sqs.IQueue
    allowed_regions: tuple[str, ...]
    fleet_models: dict[str, str] = field(default_factory=dict)  # fleet -> cloud model for its escalations
    split_model: str | None = None  # set where split fleets live: the split model's registry name
    split_cut: str | None = None  # and the tensor its tail starts at
    model_versions: str = ""  # the registry's deployed versions: a promotion makes new function versions
    concurrency: Concurrency = field(default_factory=Concurrency)
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    memory_mb: int = 1024


class InferenceFunction(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: InferenceFunctionProps) -> None:
        super().__init__(scope, construct_id)
        code = python_function_code(RUNTIME, ARCHITECTURE)
        environment = {
            "JURISDICTION": props.jurisdiction,
            "MODEL_DIR": "/var/task/models",
            "DEFAULT_MODEL": props.default_model,
            "RESULTS_QUEUE_URL": props.results_queue.queue_url,
            "ALLOWED_REGIONS": ",".join(props.allowed_regions),
            "QUARANTINE_BUCKET": props.bucket.bucket_name,
            "INPUT_PREFIX": INPUT_PREFIX,
            "OUTPUT_PREFIX": OUTPUT_PREFIX,
            "MODEL_VERSIONS": props.model_versions,
            "FLEET_MODELS": json.dumps(props.fleet_models, sort_keys=True, separators=(",", ":")),
            "POWERTOOLS_SERVICE_NAME": "domicile-inference",
            "POWERTOOLS_METRICS_NAMESPACE": "Domicile",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }

        def function(
            name: str, handler: str, description: str, reserved: int, extra: dict[str, str] | None = None
        ) -> lambda_.Function:
            log_group = function_log_group(self, f"{name}Logs", key=props.key, retention=props.log_retention)
            return lambda_.Function(
                self,
                name,
                description=description,
                runtime=RUNTIME,
                architecture=ARCHITECTURE,
                handler=handler,
                code=code,
                memory_size=props.memory_mb,
                reserved_concurrent_executions=reserved,
                environment_encryption=props.key,  # the region's own key, as every store of the region
                timeout=FUNCTION_TIMEOUT,
                environment={**environment, **(extra or {})},
                tracing=lambda_.Tracing.ACTIVE,
                log_group=log_group,
            )

        limits = props.concurrency
        self.http = function("Http", "functions.inference.http_api.handler", "OIP v2 inference over HTTP", limits.http)
        split_env = {"SPLIT_MODEL": props.split_model, "SPLIT_CUT": props.split_cut} if (
            props.split_model and props.split_cut) else {}  # fmt: skip
        self.sqs = function(
            "Sqs",
            "functions.inference.sqs_batch.handler",
            "Batch inference of queued escalations and split cases",
            limits.batch,
            split_env,
        )
        self.s3 = function(
            "S3", "functions.inference.s3_batch.handler", "JSON-lines batch inference from S3", limits.s3
        )
        self.releases: dict[str, CanaryRelease] = {}

        self.url = self.live(self.http).add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)

        self.live(self.sqs).add_event_source(
            sources.SqsEventSource(
                props.request_queue,
                batch_size=100,  # up to 100 cases a run: one ORT call, ten SendMessageBatch calls
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
                max_concurrency=limits.batch,  # never more batches than the function may run: no throttling
            )
        )
        props.results_queue.grant_send_messages(self.sqs)

        props.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.live(self.s3)),
            s3.NotificationKeyFilter(prefix=INPUT_PREFIX, suffix=".jsonl"),
        )
        # S3 invokes asynchronously too: an object whose batch failed every retry is named in the DLQ.
        self.live(self.s3).configure_async_invoke(
            retry_attempts=2, on_failure=destinations.SqsDestination(props.escalation_dlq)
        )
        props.bucket.grant_read(self.s3, f"{INPUT_PREFIX}*")
        props.bucket.grant_put(self.s3, f"{OUTPUT_PREFIX}*")

        self.escalate = function(
            "Escalate", "functions.inference.iot_escalate.handler", "Answers IoT escalations", limits.escalate
        )
        self.split_tail: lambda_.Function | None = None
        rule_functions = [self.escalate]
        if props.split_model and props.split_cut:
            self.split_tail = function(
                "SplitTail", "functions.inference.split_tail.handler", "Finishes split cases (the deep model's tail)",
                limits.split_tail, split_env,
            )  # fmt: skip
            rule_functions.append(self.split_tail)
        for fn in rule_functions:
            # IoT Core's rules invoke these asynchronously; what fails after the retries goes to the DLQ.
            self.live(fn).configure_async_invoke(
                retry_attempts=2, on_failure=destinations.SqsDestination(props.escalation_dlq)
            )
            props.results_queue.grant_send_messages(fn)
        for fn in (self.sqs, *rule_functions):
            props.bucket.grant_put(fn, f"{QUARANTINE_PREFIX}*")  # residency violations, kept in-region

        self.escalate_live = self.live(self.escalate)
        self.split_tail_live = self.live(self.split_tail) if self.split_tail else None
        CfnOutput(self, "FunctionUrl", value=self.url.url)
        for fn in (self.http, self.sqs, self.s3, *rule_functions):
            suppress_lambda_defaults(
                fn, [{"regex": "/^Resource::<.*Bucket.*\\.Arn>/(incoming|results|quarantine)/\\*$/g"}]
            )

    def live(self, fn: lambda_.Function) -> lambda_.Alias:
        """The function's `live` alias (what every caller invokes), with its canary release; made once."""
        if fn.node.id not in self.releases:
            self.releases[fn.node.id] = CanaryRelease(self, f"{fn.node.id}Release", function=fn)
        return self.releases[fn.node.id].alias
