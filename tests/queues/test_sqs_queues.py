"""What SQS queues do beyond the contract: exact resolution, provisioning, sender policy, redrive, FIFO."""

import json

import boto3
import pytest

from queues.providers.base import ConfigurationError, ProviderError

from ..brokers import make_spec


@pytest.fixture
def sqs():
    return boto3.client("sqs")


def test_it_resolves_a_name_exactly_never_by_prefix(sqs, providers):
    sqs.create_queue(QueueName="eh-exact-orders-2")
    target = sqs.create_queue(QueueName="eh-exact-orders")["QueueUrl"]
    provider = providers(make_spec("sqs", name="eh-exact-orders", provision=False))
    assert provider.url == target
    missing = providers(make_spec("sqs", name="eh-exact-order", provision=False))
    with pytest.raises(ConfigurationError, match="does not exist"):
        missing.receive(1, 0)


def test_it_resolves_urls_and_arns_to_the_same_queue(sqs, providers):
    url = sqs.create_queue(QueueName="eh-by-ref")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    providers(make_spec("sqs", name="eh-by-ref")).publish('{"via": "name"}')
    for ref in (url, arn):
        provider = providers(make_spec("sqs", name=ref, provision=False))
        assert provider.url == url
    [message] = providers(make_spec("sqs", name=arn, provision=False)).receive(10, 1)
    assert message.payload == {"via": "name"}


def test_it_provisions_a_queue_with_redrive_and_a_policy_for_exactly_the_authorized_accounts(sqs, providers):
    accounts = ("111122223333", "444455556666")
    spec = make_spec("sqs", authorized_accounts=accounts, max_deliveries=4, visibility_timeout=45)
    provider = providers(spec)
    provider.receive(1, 0)

    attributes = sqs.get_queue_attributes(QueueUrl=provider.url, AttributeNames=["All"])["Attributes"]
    policy = json.loads(attributes["Policy"])
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sqs:SendMessage"
    assert sorted(statement["Principal"]["AWS"]) == [f"arn:aws:iam::{a}:root" for a in accounts]
    assert statement["Resource"] == attributes["QueueArn"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{spec.name}-dlq")
    assert int(redrive["maxReceiveCount"]) == 5  # one past Eventhub's maximum: quarantine comes first
    assert attributes["VisibilityTimeout"] == "45"


def test_it_counts_dead_lettered_messages(sqs, providers):
    provider = providers(make_spec("sqs", max_deliveries=1, visibility_timeout=0))
    provider.publish("{}", message_id="doomed")
    for _ in range(3):  # past the redrive's maxReceiveCount of 2
        provider.receive(1, 1)
    assert provider.depth().dead == 1
    assert provider.depth().ready == 0


def test_it_publishes_to_fifo_queues_with_group_and_deduplication(providers):
    provider = providers(make_spec("sqs", name=f"{make_spec('sqs').name}.fifo"))
    provider.publish('{"n": 1}', message_id="same-id")
    provider.publish('{"n": 1}', message_id="same-id")  # deduplicated by SQS
    provider.publish('{"n": 2}', message_id="other-id")
    messages = provider.receive(10, 1)
    assert [m.message_id for m in messages] == ["same-id", "other-id"]


def test_it_says_when_sqs_cannot_be_reached(providers):
    provider = providers(make_spec("sqs", endpoint_url="http://127.0.0.1:1"))
    with pytest.raises(ProviderError) as caught:
        provider.receive(1, 0)
    assert caught.value.retryable


def test_it_withdraws_its_policy_when_no_account_is_authorized_any_more(sqs, providers):
    name = make_spec("sqs").name
    provider = providers(make_spec("sqs", name=name, authorized_accounts=("111122223333",)))
    provider.receive(1, 0)
    assert "111122223333" in sqs.get_queue_attributes(QueueUrl=provider.url, AttributeNames=["Policy"])[
        "Attributes"]["Policy"]
    providers(make_spec("sqs", name=name)).receive(1, 0)
    attributes = sqs.get_queue_attributes(QueueUrl=provider.url, AttributeNames=["Policy"]).get("Attributes", {})
    assert "111122223333" not in attributes.get("Policy", "")
