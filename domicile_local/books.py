"""`domicile books`: the per-case books of a deployed app, read from its stores (tables, bucket, DLQs).

The synthesized templates say which resources hold what (`domicile.aws.stores.stores_of_template`);
CloudFormation says what each one is called in the account (ListStackResources: a queue's physical id
is its URL, a table's and a bucket's their names). Nothing is written; DLQ messages are made visible
again after they are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domicile.aws.stores import aggregate_function, read_region, stores_of_template
from domicile.cloud.books import Books, StoreContents, reconcile
from domicile.config.assembly import read_assembly
from domicile.errors import ConfigError


def _physical_ids(cloudformation: Any, stack: str, region: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    ids: dict[str, str] = {}
    try:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
            for resource in page["StackResourceSummaries"]:
                if "PhysicalResourceId" in resource:
                    ids[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    except ClientError as error:
        raise ConfigError(f"{stack}: not deployed in {region}? CloudFormation says: {error}") from None
    return ids


def deployed_books(cdk_out: Path, session: Any, endpoint: str | None = None) -> Books:
    """The books of every stack of `cdk_out` as deployed (each in its own region), merged."""
    contents = StoreContents()
    found = 0
    for stack in read_assembly(cdk_out):
        if aggregate_function(stack.template) is None:
            continue

        def client(service: str, region: str = stack.region) -> Any:
            return session.client(service, region_name=region, endpoint_url=endpoint)

        physical = _physical_ids(client("cloudformation"), stack.name, stack.region)
        try:
            stores = stores_of_template(stack.template, stack.region, physical)
        except KeyError as missing:
            raise ConfigError(f"{stack.name}: resource {missing} of the template is not deployed") from None
        if stores is None:
            continue
        found += 1
        contents = contents.merge(read_region(stores, client("dynamodb"), client("s3"), client("sqs")))
    if not found:
        raise ConfigError(f"{cdk_out}: no stack with an aggregate function; synthesize the app first")
    return reconcile(contents)
