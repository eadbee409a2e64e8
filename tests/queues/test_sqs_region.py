"""Which AWS region an SQS queue is reached in: the queue's own (its config's field, its ARN's or AWS URL's),
else the environment's as AWS's CLI and SDKs read it (AWS_REGION, then AWS_DEFAULT_REGION, then the
profile's config file), else a ConfigurationError naming all three places to set one.

The suite's session sets both variables (tests/brokers.py); each test here sets exactly the ones it is
about, and points AWS_CONFIG_FILE at a file of its own so that this machine's ~/.aws never takes part."""

import json

import boto3
import pytest

from queues.providers.base import ConfigurationError

from ..brokers import make_spec

ARN = "arn:aws:sqs:ap-northeast-1:123456789012:orders"


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch, tmp_path):
    """No region anywhere until a test sets one; `set(AWS_REGION=…, profile=…)` sets some."""
    config_file = tmp_path / "aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    def set_region(profile: str | None = None, **variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        if profile:
            config_file.write_text(f"[default]\nregion = {profile}\n")

    return set_region


def region_of(providers, **spec) -> str:
    return providers(make_spec("sqs", **spec)).client.meta.region_name


def test_the_configs_region_wins_over_the_environment(aws_environment, providers):
    aws_environment(AWS_REGION="us-west-2", AWS_DEFAULT_REGION="us-east-2")
    assert region_of(providers, region="eu-west-1") == "eu-west-1"


def test_an_arns_region_wins_over_the_environment_but_not_over_the_config(aws_environment, providers):
    aws_environment(AWS_REGION="us-west-2", AWS_DEFAULT_REGION="us-east-2")
    assert region_of(providers, name=ARN) == "ap-northeast-1"
    assert region_of(providers, name=ARN, region="eu-west-1") == "eu-west-1"


@pytest.mark.parametrize(("url", "region"), [
    ("https://sqs.ap-southeast-2.amazonaws.com/123456789012/orders", "ap-southeast-2"),
    ("https://eu-north-1.queue.amazonaws.com/123456789012/orders", "eu-north-1"),
    ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/orders", "cn-north-1"),
    ("http://127.0.0.1:5000/123456789012/orders", "us-west-2"),  # not AWS's host: it names no region
])
def test_an_aws_queue_urls_region_wins_over_the_environment(aws_environment, providers, url, region):
    aws_environment(AWS_REGION="us-west-2")
    assert region_of(providers, name=url) == region


def test_aws_region_alone_is_enough_and_is_where_the_queue_lives(aws_environment, providers):
    aws_environment(AWS_REGION="eu-central-1")
    provider = providers(make_spec("sqs"))
    provider.publish(json.dumps({"n": 1}))
    [message] = provider.receive(10, 1)
    assert message.payload == {"n": 1}
    # moto keeps queues per region, as SQS does: the queue was made in AWS_REGION's and nowhere else.
    assert boto3.client("sqs", region_name="eu-central-1").get_queue_url(QueueName=provider.queue_name)
    elsewhere = boto3.client("sqs", region_name="us-east-1").list_queues(QueueNamePrefix=provider.queue_name)
    assert "QueueUrls" not in elsewhere


def test_aws_default_region_alone_is_enough(aws_environment, providers):
    aws_environment(AWS_DEFAULT_REGION="eu-south-1")
    assert region_of(providers) == "eu-south-1"


def test_aws_region_wins_when_both_variables_differ(aws_environment, providers):
    aws_environment(AWS_REGION="ca-central-1", AWS_DEFAULT_REGION="us-east-2")
    assert region_of(providers) == "ca-central-1"


def test_the_profiles_region_comes_after_both_variables(aws_environment, providers):
    aws_environment(profile="sa-east-1")
    assert region_of(providers) == "sa-east-1"
    aws_environment(AWS_DEFAULT_REGION="us-east-2")
    assert region_of(providers) == "us-east-2"


def test_without_a_region_it_names_the_config_field_and_both_variables(providers):
    provider = providers(make_spec("sqs"))
    with pytest.raises(ConfigurationError) as caught:
        provider.receive(1, 0)
    message = str(caught.value)
    assert repr(provider.spec.name) in message and "region field" in message
    assert "AWS_REGION" in message and "AWS_DEFAULT_REGION" in message
    assert not caught.value.retryable
