"""As in the Greengrass Lambda runtime: function ARNs come from the environment at import."""

import os

AUTH_TOKEN = os.getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
MY_FUNCTION_ARN = os.getenv("MY_FUNCTION_ARN")
SHADOW_FUNCTION_ARN = os.getenv("SHADOW_FUNCTION_ARN")
ROUTER_FUNCTION_ARN = os.getenv("ROUTER_FUNCTION_ARN")
SECRETS_MANAGER_FUNCTION_ARN = os.getenv("SECRETS_MANAGER_FUNCTION_ARN")
GG_DAEMON_PORT = os.getenv("GG_DAEMON_PORT", "8000")
