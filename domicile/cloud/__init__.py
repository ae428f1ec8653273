"""Cloud answers: escalations and JSON-lines batches run on the cloud model, and what a result adds to aggregates."""
