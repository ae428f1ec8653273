"""Parses Lambda function ARNs the way the Greengrass runtime does (for Lambda.Client.invoke)."""

import re

_ARN = re.compile(r"^arn:(?P<partition>[^:]+):lambda:(?P<region>[^:]+):(?P<account>\d+):function:(?P<name>[^:]+)(:(?P<qualifier>.+))?$")


class FunctionArnFields:
    def __init__(self, function_arn):
        match = _ARN.match(function_arn)
        if not match:
            raise ValueError("Cannot parse given string as a function ARN: {}".format(function_arn))
        self.qualifier = match.group("qualifier") or ""
        self.unqualified_arn = "arn:{partition}:lambda:{region}:{account}:function:{name}".format(**match.groupdict())

    @staticmethod
    def build_function_arn(unqualified_arn, qualifier=None):
        return unqualified_arn + (":" + qualifier if qualifier else "")
