import pytest

from domicile.errors import ConfigError
from domicile.local_invoke import environment
from domicile.settings import load_inference_settings


def test_missing_variable_is_named(monkeypatch):
    monkeypatch.delenv("DEFAULT_MODEL")
    with pytest.raises(ConfigError, match="environment variable DEFAULT_MODEL is not set"):
        load_inference_settings()


def test_invalid_variable_is_named():
    with environment({"MAX_BODY_BYTES": "lots"}), pytest.raises(ConfigError, match="MAX_BODY_BYTES is invalid"):
        load_inference_settings()


def test_typed_values():
    with environment({"MAX_BODY_BYTES": "2048"}):
        settings = load_inference_settings()
    assert settings.max_body_bytes == 2048
    assert settings.aws_region == "eu-central-1"
    assert settings.model_dir.is_dir()
