"""The `sqs` kind: AWS SQS through boto3.

Delivery: at least once (standard queues), exactly-once publish within the deduplication window for
FIFO queues. receive long-polls (WaitTimeSeconds, at most 20 s) for up to 10 messages and hides them
for the queue config's visibility timeout. ack deletes the message with its receipt handle (after
Eventhub committed its work); nack(delay) changes its visibility so it comes back after `delay` seconds
(None: the visibility timeout is left to run). Delivery count: SQS's ApproximateReceiveCount.
Ordering: none for standard queues; per message group for FIFO queues (`.fifo` names), where Eventhub
publishes with the group id `eventhub` and the message id as deduplication id.

The queue name may be a name, a queue URL or an ARN; it is resolved exactly with GetQueueUrl (with the
owner account of a URL or ARN), never by prefix. With `provision` on, a missing queue named by its plain
name is created, with a dead-letter queue `<name>-dlq` (redrive after max_deliveries + 1 receives, so
Eventhub quarantines first) and a queue policy allowing `sqs:SendMessage` from exactly the authorized
accounts; an existing queue gets its redrive and policy brought in step.

Options: the region is the queue's own if it has one (the config's `region`, else the region of an ARN
or of an AWS queue URL), else the environment's as AWS's CLI and SDKs read it: AWS_REGION, then
AWS_DEFAULT_REGION, then the `region` of the AWS profile's config file (boto3 alone reads only the last
two). The endpoint is the config's, else AWS_ENDPOINT_URL_SQS; credentials only through boto3's default
chain (never stored by Eventhub).
The message id given to publish travels as the message attribute `eventhub-message-id` (SQS assigns its
own MessageId), and as the deduplication id on FIFO queues.
"""

import json
import logging
import os
import re
import uuid
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .base import ConfigurationError, Message, Provider, ProviderError, QueueDepth, QueueSpec
from .bodies import make_message

log = logging.getLogger(__name__)
ID_ATTRIBUTE = "eventhub-message-id"
FIFO_GROUP = "eventhub"
POLICY_ID_SUFFIX = "/eventhub-senders"  # marks a queue policy Eventhub wrote
# The hosts of AWS's own queue URLs, which name the region (sqs.eu-west-1.amazonaws.com, the legacy
# eu-west-1.queue.amazonaws.com, China's .amazonaws.com.cn); any other host (moto, LocalStack) names none.
AWS_QUEUE_HOST = re.compile(r"^(?:sqs(?:-fips)?\.(?P<region>[a-z0-9-]+)|(?P<legacy>[a-z0-9-]+)\.queue)"
                            r"\.amazonaws\.com(?:\.cn)?$")


def parse_queue_ref(name: str) -> tuple[str, str | None, str | None]:
    """(queue name, owner account, region) from a name, URL or ARN."""
    if name.startswith("arn:"):
        _, _, _, region, account, queue = name.split(":", 5)
        return queue, account or None, region or None
    if name.startswith(("http://", "https://")):
        parts = urlsplit(name)
        account, _, queue = parts.path.strip("/").partition("/")
        host = AWS_QUEUE_HOST.match(parts.hostname or "")
        return queue, account or None, (host["region"] or host["legacy"]) if host else None
    return name, None, None


def region_for(spec: QueueSpec, queue_region: str | None, session: boto3.session.Session) -> str:
    """The queue's own region (the config's field, else its ARN's or URL's) wins over the environment's, which
    is read as AWS's CLI and SDKs read it: AWS_REGION, then AWS_DEFAULT_REGION, then the profile's config
    file (the session reads those two; boto3 never looks at AWS_REGION)."""
    region = spec.region or queue_region or os.environ.get("AWS_REGION", "").strip() or session.region_name
    if not region:
        raise ConfigurationError(
            f"no AWS region for SQS queue {spec.name!r}: set the queue config's region field, or AWS_REGION or "
            "AWS_DEFAULT_REGION in the environment"
        )
    return region


def policy_document(queue_arn: str, accounts: tuple[str, ...]) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Id": f"{queue_arn}{POLICY_ID_SUFFIX}",
        "Statement": [{
            "Sid": "EventhubAuthorizedSenders",
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{account}:root" for account in accounts]},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
        }],
    })


class SqsProvider(Provider):
    kind = "sqs"

    def __init__(self, spec):
        super().__init__(spec)
        self.queue_name, self.owner, self.queue_region = parse_queue_ref(spec.name)
        self.fifo = self.queue_name.endswith(".fifo")
        self._client = None
        self._url: str | None = None

    # Connection ---------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            session = boto3.session.Session()
            self._client = session.client(
                "sqs", region_name=region_for(self.spec, self.queue_region, session),
                endpoint_url=self.spec.endpoint_url or None,
                config=Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=30),
            )
        return self._client

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._call(self._resolve)
        return self._url

    def _resolve(self) -> str:
        args = {"QueueName": self.queue_name}
        if self.owner:
            args["QueueOwnerAWSAccountId"] = self.owner
        try:
            url = self.client.get_queue_url(**args)["QueueUrl"]
        except ClientError as exc:
            if not _missing(exc):
                raise
            if not (self.spec.provision and self.owner is None):
                raise ConfigurationError(f"SQS queue {self.spec.name!r} does not exist") from None
            return self._create(self.queue_name)
        if self.spec.provision:
            self._bring_in_step(url)
        return url

    def _create(self, name: str) -> str:
        base = name.removesuffix(".fifo")
        fifo = {"FifoQueue": "true"} if self.fifo else {}
        dlq_name = f"{base}-dlq" + (".fifo" if self.fifo else "")
        dlq_url = self.client.create_queue(QueueName=dlq_name, Attributes={**fifo})["QueueUrl"]
        url = self.client.create_queue(QueueName=name, Attributes={
            **fifo,
            "VisibilityTimeout": str(self.spec.visibility_timeout),
            "ReceiveMessageWaitTimeSeconds": str(min(int(self.spec.wait_seconds), 20)),
        })["QueueUrl"]
        log.info("created SQS queue %s with dead-letter queue %s", url, dlq_url)
        self._bring_in_step(url, dlq_url)
        return url

    def _bring_in_step(self, url: str, dlq_url: str | None = None) -> None:
        """Redrive to the dead-letter queue and the sender policy, as the config says."""
        attributes = {"VisibilityTimeout": str(self.spec.visibility_timeout)}
        if dlq_url:
            attributes["RedrivePolicy"] = json.dumps({
                "deadLetterTargetArn": self._arn(dlq_url), "maxReceiveCount": str(self.spec.broker_max_receives)
            })
        if self.spec.authorized_accounts:
            attributes["Policy"] = policy_document(self._arn(url), self.spec.authorized_accounts)
        elif POLICY_ID_SUFFIX in self._current_policy(url):
            attributes["Policy"] = ""  # ours, and no account is authorized any more; others' policies stay
        self.client.set_queue_attributes(QueueUrl=url, Attributes=attributes)

    def _current_policy(self, url: str) -> str:
        response = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
        return response.get("Attributes", {}).get("Policy", "")

    def _arn(self, url: str) -> str:
        return self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def attributes(self, *names: str) -> dict:
        return self._call(lambda: self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=list(names)))[
            "Attributes"
        ]

    # The interface ------------------------------------------------------------------------------

    def receive(self, max_messages: int, wait: float) -> list[Message]:
        response = self._call(lambda: self.client.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=max(1, min(max_messages, 10)),
            WaitTimeSeconds=max(0, min(int(wait), 20)), VisibilityTimeout=self.spec.visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount"], MessageAttributeNames=[ID_ATTRIBUTE],
        ))
        return [self._message(raw) for raw in response.get("Messages", [])]

    def _message(self, raw: dict) -> Message:
        given = raw.get("MessageAttributes", {}).get(ID_ATTRIBUTE, {}).get("StringValue")
        count = int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return make_message(given or raw["MessageId"], raw["Body"], count, raw["ReceiptHandle"], self.spec)

    def ack(self, message: Message) -> None:
        self._call(lambda: self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message.handle))

    def ack_many(self, messages: list[Message]) -> None:
        for start in range(0, len(messages), 10):  # DeleteMessageBatch takes at most 10 entries
            entries = [{"Id": str(n), "ReceiptHandle": m.handle} for n, m in enumerate(messages[start:start + 10])]
            response = self._call(lambda e=entries: self.client.delete_message_batch(QueueUrl=self.url, Entries=e))
            if response.get("Failed"):
                raise ProviderError(f"SQS {self.spec.name}: could not delete {response['Failed']}")

    def nack(self, message: Message, delay: float | None = None) -> None:
        if delay is None:
            return
        self._call(lambda: self.client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=message.handle, VisibilityTimeout=int(delay)
        ))

    def publish(self, body: str, *, message_id: str | None = None) -> str:
        args: dict = {"QueueUrl": self.url, "MessageBody": body}
        if message_id:
            args["MessageAttributes"] = {ID_ATTRIBUTE: {"DataType": "String", "StringValue": message_id}}
        if self.fifo:
            args["MessageGroupId"] = FIFO_GROUP
            args["MessageDeduplicationId"] = message_id or uuid.uuid4().hex
        response = self._call(lambda: self.client.send_message(**args))
        return message_id or response["MessageId"]

    def depth(self) -> QueueDepth:
        attrs = self.attributes("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                "RedrivePolicy")
        dead = None
        if "RedrivePolicy" in attrs:
            dlq_arn = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
            name, account, _ = parse_queue_ref(dlq_arn)
            dlq_url = self._call(lambda: self.client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account))
            dead = int(self._call(lambda: self.client.get_queue_attributes(
                QueueUrl=dlq_url["QueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
            ))["Attributes"]["ApproximateNumberOfMessages"])
        return QueueDepth(ready=int(attrs["ApproximateNumberOfMessages"]),
                          in_flight=int(attrs["ApproximateNumberOfMessagesNotVisible"]), dead=dead)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._url = None

    def _call(self, call):
        try:
            return call()
        except ProviderError:
            raise
        except ClientError as exc:
            raise ProviderError(f"SQS {self.spec.name}: {exc}", retryable=not _missing(exc)) from exc
        except BotoCoreError as exc:
            raise ProviderError(f"SQS {self.spec.name}: {exc}") from exc


def _missing(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
