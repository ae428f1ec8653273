"""cdk-nag on the whole app: AwsSolutions rules, errors fail the synth."""

from __future__ import annotations

from aws_cdk import App, AspectPriority, Aspects
from cdk_nag import AwsSolutionsChecks


def apply_nag(app: App) -> None:
    # Read-only: runs after the mutating aspects (the region guard's deny statements).
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True, reports=True), priority=AspectPriority.READONLY)
