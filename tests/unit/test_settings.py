"""Each function's settings: only what it reads, refused at init with the variable's name."""

import dataclasses

import pytest

from domicile.config.settings import (
    AggregateSettings,
    EscalateSettings,
    HttpSettings,
    S3BatchSettings,
    SplitTailSettings,
    SqsBatchSettings,
    load_settings,
)
from domicile.errors import ConfigError
from domicile_local.invoke import environment


def test_missing_variable_is_named(monkeypatch):
    monkeypatch.delenv("DEFAULT_MODEL")
    with pytest.raises(ConfigError, match="environment variable DEFAULT_MODEL is not set"):
        load_settings(HttpSettings)


def test_invalid_variable_is_named():
    with environment({"MAX_BODY_BYTES": "lots"}), pytest.raises(ConfigError, match="MAX_BODY_BYTES is invalid"):
        load_settings(HttpSettings)


def test_typed_values():
    with environment({"MAX_BODY_BYTES": "2048"}):
        settings = load_settings(HttpSettings)
    assert settings.max_body_bytes == 2048
    assert settings.aws_region == "eu-central-1"
    assert settings.model_dir.is_dir()


@pytest.mark.parametrize(
    ("kind", "variable"),
    [
        (SqsBatchSettings, "RESULTS_QUEUE_URL"),
        (SqsBatchSettings, "QUARANTINE_BUCKET"),
        (EscalateSettings, "RESULTS_QUEUE_URL"),
        (SplitTailSettings, "SPLIT_MODEL"),
        (SplitTailSettings, "SPLIT_CUT"),
        (AggregateSettings, "AGGREGATES_TABLE"),
    ],
)
def test_each_function_refuses_at_init_what_it_needs_and_lacks(monkeypatch, kind, variable):
    monkeypatch.setenv("RESULTS_QUEUE_URL", "https://sqs.eu-central-1.amazonaws.com/123456789012/results")
    monkeypatch.setenv("QUARANTINE_BUCKET", "bucket")
    monkeypatch.setenv("SPLIT_MODEL", "digits-deep")
    monkeypatch.setenv("SPLIT_CUT", "hidden1")
    monkeypatch.setenv("AGGREGATES_TABLE", "aggregates")
    monkeypatch.setenv("ARCHIVE_BUCKET", "bucket")
    load_settings(kind)  # all there: it loads
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigError, match=f"^environment variable {variable} is not set$"):
        load_settings(kind)


def test_a_function_does_not_need_what_only_another_reads(monkeypatch):
    for variable in ("RESULTS_QUEUE_URL", "QUARANTINE_BUCKET", "SPLIT_MODEL", "SPLIT_CUT"):
        monkeypatch.delenv(variable, raising=False)
    assert load_settings(HttpSettings).max_batch_rows > 0
    assert load_settings(S3BatchSettings).input_prefix == "incoming/"


def test_a_functions_residency_policy_comes_from_its_settings(monkeypatch):
    from domicile.residency.policy import ResidencyPolicy

    assert ResidencyPolicy.from_settings(load_settings(HttpSettings)).allowed_regions == ("eu-central-1", "eu-west-1")
    monkeypatch.delenv("ALLOWED_REGIONS")
    assert ResidencyPolicy.from_settings(load_settings(HttpSettings)).allowed_regions == ("eu-central-1",)


def test_a_structured_variable_is_read_as_json(monkeypatch):
    monkeypatch.setenv("RESULTS_QUEUE_URL", "https://sqs.eu-central-1.amazonaws.com/123456789012/results")
    monkeypatch.setenv("QUARANTINE_BUCKET", "bucket")
    monkeypatch.setenv("FLEET_MODELS", '{"lab": "digits-deep"}')
    settings = load_settings(EscalateSettings)
    assert settings.cloud_model_for("lab") == "digits-deep"
    assert settings.cloud_model_for("other") == settings.default_model
    monkeypatch.setenv("FLEET_MODELS", "lab=digits-deep")
    with pytest.raises(ConfigError, match=r"^environment variable FLEET_MODELS is invalid: not JSON"):
        load_settings(EscalateSettings)
    monkeypatch.setenv("FLEET_MODELS", '["lab"]')
    with pytest.raises(ConfigError, match=r"^environment variable FLEET_MODELS is invalid: "):
        load_settings(EscalateSettings)


def test_settings_are_frozen_and_ignore_other_variables(monkeypatch):
    monkeypatch.setenv("SOMETHING_ELSE", "x")
    settings = load_settings(HttpSettings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_body_bytes = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        del settings.max_body_bytes
    assert dataclasses.replace(settings, max_body_bytes=7).max_body_bytes == 7  # a changed copy is still made


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("MAX_BODY_BYTES", "0", "should be greater than 0, not 0"),
        ("MAX_BATCH_ROWS", "1.5", "should be a whole number, not '1.5'"),
        ("INTRA_OP_THREADS", "0", "should be at least 1, not 0"),
    ],
)
def test_each_bound_is_checked_and_named(variable, value, reason):
    with environment({variable: value}), pytest.raises(ConfigError) as err:
        load_settings(HttpSettings)
    assert str(err.value) == f"environment variable {variable} is invalid: {reason}"


def test_every_bad_variable_is_named_at_once(monkeypatch):
    monkeypatch.delenv("DEFAULT_MODEL")
    monkeypatch.setenv("INPUT_PREFIX", "incoming")  # an S3 prefix must end in '/'
    with pytest.raises(ConfigError) as err:
        load_settings(S3BatchSettings)
    problems = str(err.value).split("; ")
    assert problems[0] == "environment variable DEFAULT_MODEL is not set"
    assert problems[1].startswith("environment variable INPUT_PREFIX is invalid: should match")


def test_a_json_object_of_other_values_is_refused(monkeypatch):
    monkeypatch.setenv("RESULTS_QUEUE_URL", "https://sqs.eu-central-1.amazonaws.com/123456789012/results")
    monkeypatch.setenv("QUARANTINE_BUCKET", "bucket")
    monkeypatch.setenv("FLEET_MODELS", '{"lab": 3}')
    with pytest.raises(ConfigError, match="FLEET_MODELS is invalid: should be a JSON object of str values"):
        load_settings(EscalateSettings)
