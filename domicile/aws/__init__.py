"""AWS adapters: the only core code that talks to AWS (DynamoDB aggregates, the SQS result sink, S3 quarantine)."""
