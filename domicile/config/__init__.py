"""Configuration: the topology file, where a project keeps it, and each function's settings."""
