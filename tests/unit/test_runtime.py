import math
import re
import shutil

import numpy as np
import pytest

from domicile.errors import InputError, ModelIntegrityError, ModelNotFoundError
from domicile.models.registry import TensorSpec
from domicile.models.runtime import ModelRuntime
from domicile.models.validation import input_batch
from tests.conftest import MODELS

ROWS_64 = TensorSpec(name="pixels", shape=(-1, 64), dtype="float32")

ROW = [0.0] * 64


@pytest.fixture(scope="module")
def runtime():
    return ModelRuntime(MODELS)


def test_one_session_per_model_reused(runtime):
    first = runtime.session("digits-edge")
    assert runtime.session("digits-edge") is first
    assert runtime.session("digits-cloud") is not first


def test_batch_predictions_equal_row_by_row(runtime):
    from domicile.models.datasets import load_digits_splits

    x = load_digits_splits().test.x[:20]
    batch = runtime.predict("digits-cloud", x)
    for i in range(len(x)):
        single = runtime.predict("digits-cloud", x[i])
        assert single.labels[0] == batch.labels[i]
        np.testing.assert_allclose(single.probabilities[0], batch.probabilities[i], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batch.probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_unknown_model(runtime):
    with pytest.raises(ModelNotFoundError, match="'digits-huge' is not served here"):
        runtime.predict("digits-huge", ROW)


def test_tampered_model_refuses_to_load(tmp_path):
    shutil.copytree(MODELS, tmp_path / "models")
    entry_file = tmp_path / "models" / "digits-edge-1.0.0.onnx"
    blob = bytearray(entry_file.read_bytes())
    blob[-10] ^= 0xFF
    entry_file.write_bytes(bytes(blob))
    tampered = ModelRuntime(tmp_path / "models")
    with pytest.raises(ModelIntegrityError, match=r"refusing to load digits-edge-1\.0\.0\.onnx: sha256"):
        tampered.session("digits-edge")
    assert "digits-edge" not in tampered._sessions
    assert tampered.predict("digits-cloud", ROW).labels.shape == (1,)  # the intact model still serves


@pytest.mark.parametrize(
    ("data", "field_reason"),
    [
        (None, "is missing"),
        ([], "is empty"),
        ([[]], "is empty"),
        ("0,1,2", "must be an array of numbers, not str"),
        ({"a": 1}, "must be an array of numbers, not dict"),
        ([1.0] * 63, "each row needs 64 features, got 63"),
        ([[1.0] * 64, [1.0] * 63], "rows have different lengths"),
        ([[[1.0] * 64]], "must be 2-D [batch, 64], got 3-D"),
        (["a"] * 64, "must hold numbers"),
        ([True] * 64, "must hold numbers, not booleans"),
        ([math.nan] + [0.0] * 63, "row 0 holds NaN or infinity"),
        ([[0.0] * 64, [math.inf] + [0.0] * 63], "row 1 holds NaN or infinity"),
        ([1e300] + [0.0] * 63, "row 0 holds NaN or infinity (or a value too large for float32)"),
    ],
)
def test_bad_features_are_named(data, field_reason):
    with pytest.raises(InputError) as err:
        input_batch(data, ROWS_64, "features")
    assert err.value.field == "features"
    assert field_reason in err.value.reason


def test_flat_data_with_shape():
    matrix = input_batch(list(range(128)), ROWS_64, shape=[2, 64])
    assert matrix.shape == (2, 64) and matrix.dtype == np.float32
    with pytest.raises(InputError, match="has 128 values but shape \\[3, 64\\] needs 192"):
        input_batch(list(range(128)), ROWS_64, shape=[3, 64])


WINDOWS = TensorSpec(name="window", shape=(-1, 3, 4), dtype="float16")  # a rank-3 input: 3 channels x 4 steps


def test_a_rank_3_input_takes_a_batch_one_case_or_flat_cases_and_keeps_its_dtype():
    case = np.arange(12, dtype=np.float64).reshape(3, 4)
    for data, cases in (
        (np.stack([case, case]), 2),
        (case, 1),
        (case.ravel(), 1),
        (np.stack([case, case]).reshape(2, 12), 2),
    ):
        batch = input_batch(data.tolist(), WINDOWS)
        assert batch.shape == (cases, 3, 4) and batch.dtype == np.float16
        assert np.array_equal(batch[0], case.astype(np.float16))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (np.zeros((2, 4, 3)), "each case must be shaped [3, 4], got [4, 3]"),
        (np.zeros(11), "a flat case needs 12 values (a [3, 4] case), got 11"),
        (np.zeros((2, 2, 3, 4)), "must be 3-D [batch, 3, 4], got 4-D"),
        (np.full((1, 3, 4), 1e6), "row 0 holds NaN or infinity (or a value too large for float16)"),
    ],
)
def test_a_rank_3_input_names_what_does_not_fit(data, reason):
    with pytest.raises(InputError) as err:
        input_batch(data.tolist(), WINDOWS, "inputs[0].data")
    assert (err.value.field, err.value.reason) == ("inputs[0].data", reason)


@pytest.mark.parametrize(
    ("dtype", "data", "reason"),
    [
        ("int8", [[1, 2, 300]], "row 0 holds a value outside int8's range -128..127"),
        ("uint8", [[0, 1, 2], [1, -1, 2]], "row 1 holds a value outside uint8's range 0..255"),
        ("int64", [[1.0, 2.5, 3.0]], "row 0 holds a fraction, but the model takes whole numbers (int64)"),
        ("int32", [[1.0, math.nan, 3.0]], "row 0 holds NaN or infinity"),
    ],
)
def test_integer_inputs_take_whole_numbers_in_range(dtype, data, reason):
    spec = TensorSpec(name="codes", shape=(-1, 3), dtype=dtype)
    with pytest.raises(InputError, match=re.escape(reason)):
        input_batch(data, spec)
    good = input_batch([[1.0, 2.0, 3.0]], spec)
    assert good.dtype == np.dtype(dtype) and good.tolist() == [[1, 2, 3]]
