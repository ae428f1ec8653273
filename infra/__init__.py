"""The CDK app of domicile."""

import os

# jsii warns loudly on Node 20 (end of life for jsii, still supported by CDK); the README
# targets Node 20, so keep the synth output readable. Must be set before aws_cdk is imported.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
