"""A local Greengrass v2 core that deploys what the synthesized templates declare.

`GreengrassCloud` reads the component versions and deployments of a cloud assembly; `LocalCore`
deploys one to a device folder as the nucleus would, then routes and authorizes its publishes.
"""

from domicile_local.greengrass.cloud import ConflictException, DeploymentDocument, GreengrassCloud
from domicile_local.greengrass.core import DeployedComponent, DeploymentFailed, LocalCore, RouterRefused

__all__ = [
    "ConflictException",
    "DeployedComponent",
    "DeploymentDocument",
    "DeploymentFailed",
    "GreengrassCloud",
    "LocalCore",
    "RouterRefused",
]
