"""cdk-nag on the whole app: AwsSolutions rules, errors fail the synth."""

from __future__ import annotations

from aws_cdk import App, Aspects
from cdk_nag import AwsSolutionsChecks


def apply_nag(app: App) -> None:
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True, reports=True))
