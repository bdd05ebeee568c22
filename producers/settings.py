"""The producers' settings: the shared `Settings` plus what submit, invoker and republisher need."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from jobstatus.commalist import comma_list
from jobstatus.settings import Settings
from webhooks.settings import LOCAL_STAGES

DEFAULT_MODELS = ("fal-ai/kling-video/v2/master/text-to-video",)


class ProducerSettings(Settings):
    """Settings of SubmitJobFn, FalInvokerFn and RepublisherFn (environment variables)."""

    outbox_queue_url: str = ""
    # FalInvokerFn deletes the records of finished jobs itself, after its post-response flush.
    invoker_queue_url: str = ""
    idempotency_table_name: str = "jobs-dev-idempotency"
    model_allow_list: tuple[str, ...] = DEFAULT_MODELS
    fal_key: SecretStr | None = None
    fal_key_secret_arn: str | None = None
    # How long a handler may wait, at its end, for status events still being sent; after it
    # they go to the outbox. The job's added latency stays under ~100 ms even with the bus down.
    status_flush_seconds: float = Field(default=0.05, gt=0, le=5)
    # The same wait when it runs after the response (FalInvokerFn's Lambda extension): off the
    # job's path, so it can let a slow bus finish rather than fill the outbox; the circuit
    # breaker still ends it early when the bus is down.
    status_flush_after_response_seconds: float = Field(default=0.5, gt=0, le=10)
    # The producers' EventBridge and SQS clients give up this fast (producers/aws.py FAST_FAIL):
    # milliseconds against AWS; the local stack, whose moto shares one process, gives more.
    publish_connect_timeout_seconds: float = Field(default=0.2, gt=0, le=10)
    publish_read_timeout_seconds: float = Field(default=0.5, gt=0, le=10)
    # How long SubmitJobFn retries its PutEvents before answering 503.
    submit_publish_seconds: float = Field(default=0.5, gt=0, le=10)
    # FalInvokerFn: the wait on Fal ends this long before Lambda would kill the function, so
    # FAILED (DEADLINE_EXCEEDED) and the flush still fit.
    deadline_margin_seconds: float = Field(default=20.0, ge=0)
    fal_poll_seconds: float = Field(default=2.0, gt=0)
    fal_max_attempts: int = Field(default=3, ge=1, le=10)
    fal_retry_base_seconds: float = Field(default=1.0, ge=0)
    idempotency_expiry_seconds: int = Field(default=2 * 24 * 3600, ge=60)
    # SubmitJobFn: plain http and loopback webhooks (the local stack's `--allow-local-webhooks`).
    webhooks_allow_local: bool = False

    @field_validator("model_allow_list", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        return comma_list(value)

    @model_validator(mode="after")
    def _local_webhooks_only_locally(self) -> ProducerSettings:
        if self.webhooks_allow_local and self.stage not in LOCAL_STAGES:
            raise ValueError(f"WEBHOOKS_ALLOW_LOCAL is only allowed in stages {sorted(LOCAL_STAGES)}")
        return self
