"""What the operator sees: metrics, the access log, traces and alert webhooks (imports nothing above it)."""
