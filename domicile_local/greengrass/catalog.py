"""The AWS-provided component versions the local core can resolve, as the Greengrass cloud offers them.

Each entry is a version with the dependency requirements its page lists (developer guide, each
component's "Versions" and "Dependencies" tables, checked 2026-12). A version missing here is one
the local core cannot resolve, so a deployment that needs it fails as a core would when the cloud
has no such version. Only what our deployments use is listed.
"""

from __future__ import annotations

NUCLEUS = "aws.greengrass.Nucleus"
_BEFORE_2_17 = {NUCLEUS: ">=2.0.0 <2.17.0"}

# name -> version -> {dependency: requirement}
AWS_COMPONENTS: dict[str, dict[str, dict[str, str]]] = {
    # "Greengrass nucleus": releases 2.16.1, 2.17.0, 2.18.x (nucleus source tags).
    NUCLEUS: {"2.16.1": {}, "2.17.0": {}, "2.18.2": {}},
    # "Token exchange service": 2.0.3 is the current release.
    "aws.greengrass.TokenExchangeService": {"2.0.3": {NUCLEUS: ">=2.0.0 <3.0.0"}},
    # "Lambda manager": 2.3.7 needs nucleus <2.17.0; 2.3.6 needs <2.16.0.
    "aws.greengrass.LambdaManager": {"2.3.7": _BEFORE_2_17, "2.3.6": {NUCLEUS: ">=2.0.0 <2.16.0"}},
    # "Legacy subscription router": 2.1.15 needs nucleus <2.17.0.
    "aws.greengrass.LegacySubscriptionRouter": {"2.1.15": _BEFORE_2_17},
    # "Lambda launcher": 2.0.11 - 2.0.13 need Lambda manager >=2.0.0 <2.4.0.
    "aws.greengrass.LambdaLauncher": {"2.0.13": {"aws.greengrass.LambdaManager": ">=2.0.0 <2.4.0"}},
    # "Lambda runtimes": 2.0.x has no dependencies (the exact latest patch was not checked).
    "aws.greengrass.LambdaRuntimes": {"2.0.8": {}},
}
