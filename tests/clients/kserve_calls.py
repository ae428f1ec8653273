"""Every call the KServe SDK's REST client has, against a running `domicile serve`; prints JSON.

Run by tests/integration/test_serve_clients.py with the SDK's own venv (.tools/kserve): the SDK
pins a psutil that this project's MQTT broker cannot use, so it stays out of the project's venv.
Usage: kserve_calls.py http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

MODEL = "digits-cloud"
RNG = np.random.default_rng(7)
INPUTS = np.rint(RNG.random((3, 64)) * 16).astype(np.float32)  # digits-like pixels, whole numbers


def _tensor(array: np.ndarray, datatype: str, binary: bool) -> InferInput:
    tensor = InferInput("pixels", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


async def _infer(client: InferenceRESTClient, base: str, tensor: InferInput, **kwargs: Any) -> dict[str, Any]:
    request = InferRequest(model_name=kwargs.pop("model_name", MODEL), infer_inputs=[tensor], request_id="k-1",
                           **kwargs)  # fmt: skip
    response = await client.infer(base, request, model_name=MODEL)
    out: dict[str, Any] = {"id": response.id, "model_name": response.model_name,
                           "outputs": [o.name for o in response.outputs]}  # fmt: skip
    for output in response.outputs:
        out[output.name] = output.as_numpy().tolist()
    return out


async def _error(call: Any) -> tuple[int, str] | str:
    try:
        await call
    except httpx.HTTPStatusError as err:
        return err.response.status_code, err.response.json()["error"]
    except Exception as err:  # the SDK's own checks, before any request
        return f"{type(err).__name__}: {err}"
    return "no error"


async def main(base: str) -> dict[str, Any]:
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    calls: dict[str, Any] = {"inputs": INPUTS.tolist(), "infer": {}, "errors": {}}
    try:
        calls["server_live"] = await client.is_server_live(base)
        calls["server_ready"] = await client.is_server_ready(base)
        calls["model_ready"] = await client.is_model_ready(base, MODEL)
        calls["unknown_model_ready"] = await client.is_model_ready(base, "digits-huge")
        for datatype, array in (("FP32", INPUTS), ("FP16", INPUTS.astype(np.float16)),
                                ("INT64", INPUTS.astype(np.int64))):  # fmt: skip
            for binary in (False, True):
                if datatype == "FP16" and not binary:
                    continue  # the SDK refuses FP16 in JSON itself (below)
                case = f"{datatype}/{'binary' if binary else 'json'}"
                calls["infer"][case] = await _infer(client, base, _tensor(array, datatype, binary))
        wanted = [RequestedOutput("label", parameters={"binary_data": True})]
        calls["infer"]["outputs/label-binary"] = await _infer(
            client, base, _tensor(INPUTS, "FP32", True), request_outputs=wanted
        )
        at_limit = await _infer(client, base, _tensor(np.resize(INPUTS, (1024, 64)), "FP32", True))
        calls["infer"]["rows/1024"] = {"labels": len(at_limit["label"])}
        calls["errors"]["rows/1025"] = await _error(
            _infer(client, base, _tensor(np.resize(INPUTS, (1025, 64)), "FP32", True))
        )
        calls["errors"]["model_name"] = await _error(
            _infer(client, base, _tensor(INPUTS, "FP32", False), model_name="digits-edge")
        )
        unknown = InferRequest(model_name="digits-huge", infer_inputs=[_tensor(INPUTS, "FP32", True)])
        calls["errors"]["unknown_model"] = await _error(client.infer(base, unknown, model_name="digits-huge"))
        calls["errors"]["fp16_json"] = await _error(
            _infer(client, base, _tensor(INPUTS.astype(np.float16), "FP16", False))
        )
    finally:
        await client.close()
    return calls


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1]))))
