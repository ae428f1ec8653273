"""Residency: the run-time policy, and one reading of where a template sends data (for the Aspect and the report)."""
