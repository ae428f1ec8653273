"""The runtime's IPC client, posting work to a local Greengrass core (domicile_local.greengrass).

For the router ARN (greengrasssdk's `publish()`), the work goes to the core's legacy subscription
router: `route(source, subject, payload)`, with the source function ARN and subject that
greengrasssdk puts in the client context. A publish the router refuses fails as on a real core:
the Lambda manager answers HTTP 400 "No subscription exists for the source ... and subject ...",
which the runtime's client raises as IPCException. With no core running, the client cannot reach
the IPC server and raises IPCException too.
"""

import base64
import json
import threading
import uuid


class IPCException(Exception):
    pass


class WorkResult:
    def __init__(self, payload, func_err=""):
        self.payload = payload
        self.func_err = func_err


class FakeCore:
    """The core the runtime talks to: a router function from the local Greengrass core, or nothing."""

    def __init__(self):
        self._lock = threading.Lock()
        self._route = None
        self.router_arn = None

    def start(self, router_arn, route):
        with self._lock:
            self.router_arn, self._route = router_arn, route

    def stop(self):
        with self._lock:
            self._route = None

    def route(self, source, subject, payload):
        with self._lock:
            route = self._route
        if route is None:
            raise IPCException("Connection refused: the Greengrass core is not running")
        try:
            route(source, subject, payload)
        except Exception as exc:  # the core's answer to a refused or undeliverable publish
            if "No subscription exists" in str(exc):
                raise IPCException("HTTP Error 400:Bad Request, {!r}".format(str(exc).encode()))
            raise IPCException("the core could not deliver the message: {}".format(exc))


CORE = FakeCore()


class IPCClient:
    def __init__(self, endpoint="localhost", port=None, auth_token=None):
        self.endpoint = endpoint

    def post_work(self, function_arn, payload, client_context, invocation_type="RequestResponse"):
        if function_arn != CORE.router_arn:
            raise IPCException("the fake runtime posts only iot-data publishes, not {}".format(function_arn))
        context = json.loads(base64.b64decode(client_context))
        data = payload.read() if hasattr(payload, "read") else payload
        data = data if isinstance(data, bytes) else str(data).encode()
        CORE.route(context["custom"]["source"], context["custom"]["subject"], data)
        return str(uuid.uuid4())

    def get_work_result(self, function_arn, invocation_id):
        return WorkResult(b"")
