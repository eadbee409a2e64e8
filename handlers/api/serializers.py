"""Conductor's JSON shapes. The model validates; these describe the wire format for the schema."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from eventhub.lib.api.errors import ConductorValidationError, problems_of
from queues.kinds import KINDS

from ..actions import ACTION_KINDS
from ..conditions import EVALUATOR_TYPES
from ..models import CONDUCTOR_NAMES, EventHandler

EVENT_PATTERN = rf"^({'|'.join(KINDS)}):[\s\S]*\S[\s\S]*$"


class StartWorkflowSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(required=False, allow_null=True)
    correlationId = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    input = serializers.DictField(required=False, allow_null=True)
    taskToDomain = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, allow_null=True)
    idempotencyKey = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class TaskDetailsSerializer(serializers.Serializer):
    workflowId = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    taskRefName = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    taskId = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    output = serializers.DictField(required=False, allow_null=True)
    input = serializers.DictField(required=False, allow_null=True, help_text="Synonym of output (Eventhub).")
    reasonForIncompletion = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class TerminateWorkflowSerializer(serializers.Serializer):
    workflowId = serializers.CharField()
    terminationReason = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class UpdateWorkflowVariablesSerializer(serializers.Serializer):
    workflowId = serializers.CharField()
    variables = serializers.DictField()
    appendArray = serializers.BooleanField(required=False, allow_null=True)


class ActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(ACTION_KINDS))
    start_workflow = StartWorkflowSerializer(required=False, allow_null=True)
    complete_task = TaskDetailsSerializer(required=False, allow_null=True)
    fail_task = TaskDetailsSerializer(required=False, allow_null=True)
    terminate_workflow = TerminateWorkflowSerializer(required=False, allow_null=True)
    update_workflow_variables = UpdateWorkflowVariablesSerializer(required=False, allow_null=True)
    expandInlineJSON = serializers.BooleanField(required=False, allow_null=True)


class EventHandlerSerializer(serializers.Serializer):
    """Reads and writes Conductor's EventHandler JSON; validation is the model's own."""

    name = serializers.CharField(max_length=255)
    event = serializers.RegexField(
        EVENT_PATTERN, max_length=1024, help_text="<kind>:<queue>, e.g. sqs:shipping_start"
    )
    condition = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    evaluatorType = serializers.ChoiceField(
        choices=list(EVALUATOR_TYPES), required=False, allow_null=True, allow_blank=True
    )
    actions = serializers.ListField(child=ActionSerializer(), min_length=1)
    active = serializers.BooleanField(required=False, allow_null=True, help_text="Omitted means false.")
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    mode = serializers.ChoiceField(
        choices=["live", "shadow"], required=False, allow_null=True,
        help_text="Eventhub's own: live (the default when creating) runs the actions; shadow records what it would "
        "have done, running nothing. Omitted on an update, the handler keeps its mode. Listed only when shadow.",
    )

    def to_representation(self, instance: EventHandler) -> dict:
        return instance.to_conductor()

    def to_internal_value(self, data) -> EventHandler:
        handler = self.instance or EventHandler()
        try:
            handler.apply_conductor(data)
            handler.full_clean(validate_unique=False)
        except DjangoValidationError as exc:
            raise ConductorValidationError(problems_of(exc, CONDUCTOR_NAMES)) from None
        return handler


class TokenRequestSerializer(serializers.Serializer):
    keyId = serializers.CharField()
    keySecret = serializers.CharField()


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
