"""The runtime's IPC client, talking to a fake Greengrass core that forwards to an MQTT broker."""

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
    """Stands in for the Greengrass nucleus: its router publishes to the broker (IoT Core)."""

    def __init__(self):
        self._client = None
        self._lock = threading.Lock()
        self.router_arn = None

    def start(self, host, port, router_arn):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-greengrass-core-" + uuid.uuid4().hex[:8])
        client.connect(host, port)
        client.loop_start()
        with self._lock:
            self._client, self.router_arn = client, router_arn

    def stop(self):
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def route(self, subject, payload, timeout=5.0):
        with self._lock:
            client = self._client
        if client is None:
            raise IPCException("Connection refused: the Greengrass core is not running")
        info = client.publish(subject, payload, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise IPCException("the core could not deliver the message in time")


CORE = FakeCore()


class IPCClient:
    def __init__(self, endpoint="localhost", port=None, auth_token=None):
        self.endpoint = endpoint

    def post_work(self, function_arn, payload, client_context, invocation_type="RequestResponse"):
        if function_arn != CORE.router_arn:
            raise IPCException("the fake core routes only iot-data publishes, not {}".format(function_arn))
        context = json.loads(base64.b64decode(client_context))
        subject = context["custom"]["subject"]
        data = payload.read() if hasattr(payload, "read") else payload
        CORE.route(subject, data if isinstance(data, bytes) else str(data).encode())
        return str(uuid.uuid4())

    def get_work_result(self, function_arn, invocation_id):
        return WorkResult(b"")
