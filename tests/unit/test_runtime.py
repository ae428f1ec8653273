import math
import shutil

import numpy as np
import pytest

from domicile.errors import InputError, ModelIntegrityError, ModelNotFoundError
from domicile.models.runtime import ModelRuntime
from domicile.models.validation import features_matrix
from tests.conftest import MODELS

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
        features_matrix(data, 64, "features")
    assert err.value.field == "features"
    assert field_reason in err.value.reason


def test_flat_data_with_shape():
    matrix = features_matrix(list(range(128)), 64, shape=[2, 64])
    assert matrix.shape == (2, 64) and matrix.dtype == np.float32
    with pytest.raises(InputError, match="has 128 values but shape \\[3, 64\\] needs 192"):
        features_matrix(list(range(128)), 64, shape=[3, 64])
