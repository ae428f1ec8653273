"""The edge component's settings, from environment variables (set by the Greengrass component)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domicile.config.settings import environment_values
from domicile.config.topology import FleetMode
from domicile.errors import ConfigError
from domicile.wire.envelope import Encoding


class EdgeSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    aws_iot_thing_name: str  # Greengrass sets it to the core device's thing name
    fleet: str
    jurisdiction: str
    home_region: str
    mode: FleetMode
    model_dir: Path  # the model component's artifact folder
    model_name: str
    spool_dir: Path = Path("/greengrass/v2/work/domicile/spool")
    spool_max_entries: int = Field(default=10_000, gt=0)
    spool_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_envelope_bytes: int = Field(default=5 * 1024, gt=256, le=128 * 1024)
    max_delay_s: float = Field(default=1.0, gt=0)
    escalation_threshold: float | None = Field(default=None, ge=0, le=1)
    # Split fleets: MODEL_DIR is the split model component's folder and MODEL_NAME the split model,
    # whose head ends at this cut.
    split_cut: str | None = None
    split_encoding: Encoding = "float32"

    @model_validator(mode="after")
    def _split_needs_a_cut(self) -> EdgeSettings:
        if self.mode is FleetMode.SPLIT and not self.split_cut:
            raise ValueError("SPLIT_CUT must name the tensor the head ends at when MODE is split")
        return self


def load_edge_settings(environment: Mapping[str, str] | None = None) -> EdgeSettings:
    """From the process environment, or from `environment` (a component's, as the local core deploys it)."""
    try:
        # `environment` alone when given (a component's, as the local core deploys it), not this process's
        fields = {name: info.annotation for name, info in EdgeSettings.model_fields.items()}
        given = environment_values(fields, os.environ if environment is None else environment)
        return EdgeSettings.model_validate(given)
    except ValidationError as exc:
        missing = [str(e["loc"][0]).upper() for e in exc.errors() if e["type"] == "missing"]
        if missing:
            raise ConfigError(f"environment variable(s) {', '.join(missing)} not set") from exc
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across variables: the message names them
            raise ConfigError(str(first["msg"]).removeprefix("Value error, ")) from exc
        raise ConfigError(f"environment variable {str(first['loc'][0]).upper()} is invalid: {first['msg']}") from exc


def greengrass_runtime_present() -> bool:
    return bool(
        os.environ.get("AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT") or os.environ.get("MY_FUNCTION_ARN")
    )
