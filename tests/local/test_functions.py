"""The template's functions as the local stack runs them: handlers, settings, event sources, context."""

from __future__ import annotations

import pytest

from local.functions import LambdaContext, SqsSource, functions_from_template
from ops.template import Template

pytestmark = pytest.mark.unit


def test_sqs_sources_come_from_the_template(local_template: Template) -> None:
    functions = functions_from_template(local_template)
    assert functions["ProjectorFn"].sqs_sources == (
        SqsSource(
            queue="ProjectorQueue",
            batch_size=10,
            batching_window=0.0,
            report_batch_item_failures=True,
            maximum_concurrency=10,
        ),
    )
    invoker = functions["FalInvokerFn"]
    assert invoker.sqs_sources[0].queue == "InvokerQueue"
    assert invoker.sqs_sources[0].batch_size == 1
    assert invoker.sqs_sources[0].report_batch_item_failures
    assert invoker.timeout == 900
    assert functions["GetJobFn"].sqs_sources == ()


def test_handlers_and_globals_are_read(local_template: Template) -> None:
    functions = functions_from_template(local_template)
    assert functions["ProjectorFn"].handler == "projector.handler.lambda_handler"
    assert functions["GetJobFn"].handler == "api.handler.lambda_handler"
    assert functions["GetJobFn"].memory == 256
    assert functions["GetJobFn"].arn.startswith("arn:aws:lambda:us-east-1:")


def test_environment_is_globals_plus_the_functions_own_resolved(local_template: Template) -> None:
    local_template.refs["StatusOutboxQueue"] = "http://sqs.local/outbox"
    try:
        env = functions_from_template(local_template)["SubmitJobFn"].environment
    finally:
        del local_template.refs["StatusOutboxQueue"]
    assert env["JOBS_TABLE_NAME"] == "Jobs-test"
    assert env["EVENT_BUS_NAME"] == "jobs-test"
    assert env["STAGE"] == "test"
    assert env["OUTBOX_QUEUE_URL"] == "http://sqs.local/outbox"  # Ref to a queue is its URL
    assert "FAL_KEY_SECRET_ARN" not in functions_from_template(local_template)["FalInvokerFn"].environment


def test_queue_given_as_an_arn_string_and_defaults() -> None:
    template = Template(
        {
            "Resources": {
                "Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}},
                "F": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {
                        "Handler": "m.h",
                        "Events": {
                            "A": {
                                "Type": "SQS",
                                "Properties": {
                                    "Queue": "arn:aws:sqs:us-east-1:123456789012:q",
                                    "Enabled": False,
                                },
                            },
                            "B": {
                                "Type": "SQS",
                                "Properties": {"Queue": "arn:aws:sqs:us-east-1:123456789012:unknown"},
                            },
                            "C": {"Type": "Api", "Properties": {}},
                        },
                    },
                },
                "NoHandler": {"Type": "AWS::Serverless::Function", "Properties": {}},
            }
        }
    )
    functions = functions_from_template(template)
    assert set(functions) == {"F"}
    assert functions["F"].sqs_sources == (
        SqsSource(queue="Q", batch_size=10, batching_window=0.0, enabled=False),
    )
    assert functions["F"].timeout == 3 and functions["F"].memory == 128


def test_load_imports_the_dotted_handler() -> None:
    template = Template(
        {"Resources": {"F": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "json.dumps"}}}}
    )
    import json

    loaded: object = functions_from_template(template)["F"].load()
    assert loaded is json.dumps


def test_context_counts_down_from_the_timeout() -> None:
    now = [100.0]
    template = Template(
        {
            "Resources": {
                "F": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "m.h", "Timeout": 30}}
            }
        }
    )
    context = functions_from_template(template)["F"].context(now=lambda: now[0])
    assert context.get_remaining_time_in_millis() == 30_000
    now[0] += 29.5
    assert context.get_remaining_time_in_millis() == 500
    now[0] += 10
    assert context.get_remaining_time_in_millis() == 0
    assert context.function_name == "dev-F"
    assert context.log_group_name == "/aws/lambda/dev-F"
    assert "[$LATEST]" in context.log_stream_name
    assert isinstance(context, LambdaContext) and context.aws_request_id
