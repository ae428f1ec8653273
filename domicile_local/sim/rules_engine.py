"""IoT Core's rules engine for one region, run locally: subscribe to the rules' topics, run their actions.

The rules and their SQL come from the templates (`rules.py`). Each matched message goes to a
dispatcher that runs the rule's actions: an SQS send, or Lambda's asynchronous invoke with its
retries and on-failure destination (`AWS::Lambda::EventInvokeConfig`), as the Lambda service does.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from domicile_local.sim.assembly import ACCOUNT, StackView, function_arn
from domicile_local.sim.event_sources import Delivery, queue_url
from domicile_local.sim.rules import LocalRule, run_rule
from domicile_local.sim.workers import LambdaFunction

DISPATCHERS = 2  # threads running rule actions per region
SUBSCRIBE_TIMEOUT_S = 10
RuleWork = queue.Queue[tuple[LocalRule, str, bytes]]  # (rule, topic, payload) matched, waiting for its actions


class RulesEngine:
    def __init__(
        self, stack: StackView, rules: list[LocalRule], *, broker_url: str, aws_url: str, sqs: Any,
        workers: dict[str, LambdaFunction], delivery: Delivery,
    ) -> None:  # fmt: skip
        self.stack, self.rules, self.broker_url, self.aws_url, self.sqs = stack, rules, broker_url, aws_url, sqs
        self.workers, self.injector, self.inflight = workers, delivery.injector, delivery.inflight
        self.stats: dict[str, dict[str, float]] = {}  # rule name -> messages, seconds, outcome counts
        self.threads: list[threading.Thread] = []
        self._work: RuleWork = queue.Queue()
        self._invoke_configs = self._configs()
        self._client: Any = None

    def start(self, stop: threading.Event) -> None:
        for _ in range(DISPATCHERS):
            thread = threading.Thread(target=self._dispatch, args=(stop,), daemon=True,
                                      name=f"rules:{self.stack.region}")  # fmt: skip
            thread.start()
            self.threads.append(thread)
        self._subscribe()

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    # -- actions ---------------------------------------------------------------------------------------
    def _send_sqs(self, url: str, body: str) -> None:
        self.sqs.send_message(QueueUrl=queue_url(url.rsplit("/", 1)[-1], self.aws_url), MessageBody=body)

    def _invoke_async(self, target: str, event: Any) -> None:
        arn = function_arn(target, self.stack.region)  # an alias runs its function's code
        worker = self.workers.get(arn)
        if worker is None:
            raise RuntimeError(f"no function {arn}")
        threading.Thread(target=self._async_invoke, args=(worker, event, self._invoke_configs.get(arn)),
                         daemon=True).start()  # fmt: skip

    def _dispatch(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                rule, topic, raw = self._work.get(timeout=0.2)
            except queue.Empty:
                continue
            started = time.perf_counter()
            try:
                outcome = run_rule(rule, topic, raw, self._send_sqs, self._invoke_async)
            except Exception:
                outcome = "failed"
            stats = self.stats.setdefault(rule.name, {"messages": 0, "seconds": 0.0})
            stats["messages"] += 1
            stats["seconds"] += time.perf_counter() - started
            stats[outcome] = stats.get(outcome, 0) + 1
            self.inflight.add(-1)

    def _configs(self) -> dict[str, dict[str, Any]]:
        """Async invoke settings by function ARN (set on the alias or the function: the same code runs)."""
        configs = {}
        for resource in self.stack.resources("AWS::Lambda::EventInvokeConfig").values():
            props = self.stack.resolve(resource["Properties"])
            configs[f"arn:aws:lambda:{self.stack.region}:{ACCOUNT}:function:{props['FunctionName']}"] = props
        return configs

    def _async_invoke(self, worker: LambdaFunction, event: Any, config: dict[str, Any] | None) -> None:
        """Lambda's async invoke: retries, then the on-failure destination with the failure record."""
        self.inflight.add(+1)
        try:
            retries = int((config or {}).get("MaximumRetryAttempts", 2))
            error = ""
            for _ in range(retries + 1):
                ok, result = worker.invoke(event)
                if ok:
                    return
                error = str(result)
            destination = ((config or {}).get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
            if destination:
                record = {
                    "version": "1.0", "timestamp": datetime.now(UTC).isoformat(),
                    "requestContext": {"functionArn": worker.function.name, "condition": "RetriesExhausted",
                                       "approximateInvokeCount": retries + 1},
                    "requestPayload": event, "responseContext": {"functionError": "Unhandled"},
                    "responsePayload": {"errorMessage": error},
                }  # fmt: skip
                self.sqs.send_message(QueueUrl=queue_url(destination, self.aws_url), MessageBody=json.dumps(record))
        finally:
            self.inflight.add(-1)

    # -- the subscription ------------------------------------------------------------------------------
    def _subscribe(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from domicile.edge.transport import MqttEndpoint

        endpoint = MqttEndpoint.parse(self.broker_url)
        # A persistent session: across a broker restart (with persistence) the messages queued for the
        # rules engine are still delivered, as IoT Core's rules engine never misses a message.
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"iot-rules-{self.stack.region}-{uuid.uuid4().hex[:6]}",
            clean_session=False,
        )  # fmt: skip
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        subscribed = threading.Event()

        def on_connect(c: Any, *_: Any) -> None:
            for rule in self.rules:
                c.subscribe(rule.query.topic_filter, qos=1)

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            copies = 2 if self.injector.duplicate_now() else 1
            for rule in self.rules:
                if mqtt.topic_matches_sub(rule.query.topic_filter, message.topic):
                    for _ in range(copies):
                        self.inflight.add(+1)
                        self._work.put((rule, message.topic, message.payload))

        client.on_connect = on_connect
        client.on_subscribe = lambda *a, **k: subscribed.set()
        client.on_message = on_message
        client.connect(endpoint.host, endpoint.port)
        client.loop_start()
        self._client = client
        if not subscribed.wait(SUBSCRIBE_TIMEOUT_S):
            raise RuntimeError(f"the rules runner could not subscribe on {self.stack.region}'s broker")
