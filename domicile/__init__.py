"""domicile: serverless ML inference that keeps every record in its jurisdiction."""

__version__ = "0.1.0"
