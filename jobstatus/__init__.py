"""The shared domain of the job-status service: the event contract, the version order, settings."""
