"""The OIP v2 infer request object (KServe's REST spec), read from JSON: each rule, and the path it names."""

from typing import Any

import pytest

from domicile.errors import InputError
from domicile.wire.oip_request import InferInput, RequestedOutput, read_infer_request

TENSOR = {"name": "pixels", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.0]}


def _request(**members: Any) -> dict[str, Any]:
    return {"inputs": [dict(TENSOR)], **members}


def _tensor(**members: Any) -> dict[str, Any]:
    return _request(inputs=[{**TENSOR, **members}])


def test_every_member_the_spec_and_the_sdks_send_is_read() -> None:
    outputs = [{"name": "label", "parameters": {"binary_data": False}}, {"name": "probabilities"}]
    parameters = {"binary_data_output": True}
    body = _request(id="r-1", model_name="m", model_version="1", parameters=parameters, outputs=outputs)
    body["inputs"][0]["parameters"] = {"binary_data_size": 8}
    request = read_infer_request(body)
    assert request.inputs == [InferInput("pixels", [1, 2], "FP32", [0.5, 1.0], {"binary_data_size": 8})]
    assert (request.id, request.model_name, request.model_version) == ("r-1", "m", "1")
    assert request.parameters == {"binary_data_output": True}
    assert request.outputs == [RequestedOutput("label", {"binary_data": False}), RequestedOutput("probabilities")]


def test_null_members_read_as_absent() -> None:
    request = read_infer_request(_request(id=None, outputs=None, parameters=None))
    assert (request.id, request.outputs, request.parameters) == (None, None, None)
    assert read_infer_request(_tensor(data=None)).inputs[0].data is None  # binary data follows the JSON


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ([1], "body", "Input should be a valid dictionary"),
        ({}, "inputs", "Field required"),
        (_request(surprise=1), "surprise", "Extra inputs are not permitted"),
        ({**_request(), "": 1}, '[""]', "Extra inputs are not permitted"),
        (_tensor(**{"a.b": 1}), 'inputs[0]["a.b"]', "Extra inputs are not permitted"),
        (_request(inputs={}), "inputs", "Input should be a valid list"),
        (_request(inputs=[]), "inputs", "List should have at least 1 item after validation, not 0"),
        (_request(inputs=[TENSOR, TENSOR]), "inputs", "List should have at most 1 item after validation, not 2"),
        (_request(inputs=["pixels"]), "inputs[0]", "Input should be a valid dictionary"),
        (_tensor(colour="red"), "inputs[0].colour", "Extra inputs are not permitted"),
        (_request(inputs=[{"shape": [1], "datatype": "FP32"}]), "inputs[0].name", "Field required"),
        (_request(inputs=[{"name": "x", "datatype": "FP32"}]), "inputs[0].shape", "Field required"),
        (_request(inputs=[{"name": "x", "shape": [1]}]), "inputs[0].datatype", "Field required"),
        (_tensor(name=7), "inputs[0].name", "Input should be a valid string"),
        (_tensor(datatype=None), "inputs[0].datatype", "Input should be a valid string"),
        (_tensor(shape=[]), "inputs[0].shape", "at least 1 item"),
        (_tensor(shape=[1] * 9), "inputs[0].shape", "at most 8 items"),
        (_tensor(shape=[1, "2"]), "inputs[0].shape[1]", "Input should be a valid integer"),
        (_tensor(shape=[1, 2.0]), "inputs[0].shape[1]", "Input should be a valid integer"),
        (_tensor(shape=[True, 2]), "inputs[0].shape[0]", "Input should be a valid integer"),
        (_tensor(data="0.5,1.0"), "inputs[0].data", "must be an array"),
        (_tensor(parameters=[]), "inputs[0].parameters", "Input should be a valid dictionary"),
        (_request(id=5), "id", "Input should be a valid string"),
        (_request(id="x" * 257), "id", "String should have at most 256 characters"),
        (_request(model_name=["m"]), "model_name", "Input should be a valid string"),
        (_request(parameters="binary"), "parameters", "Input should be a valid dictionary"),
        (_request(outputs={"name": "label"}), "outputs", "Input should be a valid list"),
        (_request(outputs=[{}]), "outputs[0].name", "Field required"),
        (_request(outputs=[{"name": "label", "binary": True}]), "outputs[0].binary", "Extra inputs are not permitted"),
        (_request(outputs=[{"name": "label", "parameters": 1}]), "outputs[0].parameters", "valid dictionary"),
    ],
)
def test_a_bad_member_is_refused_naming_its_path(body: Any, field: str, reason: str) -> None:
    with pytest.raises(InputError) as err:
        read_infer_request(body)
    assert err.value.field == field and reason in err.value.reason


def test_an_id_of_256_characters_is_accepted() -> None:
    assert read_infer_request(_request(id="x" * 256)).id == "x" * 256
