"""Conductor's workflow JSON shapes, for the OpenAPI schema. Validation is the model's and runtime's own."""

from rest_framework import serializers

from ..definitions import NAME_PATTERN

NOT_BLANK = r"\S"


class WorkflowTaskSerializer(serializers.Serializer):
    name = serializers.RegexField(NOT_BLANK)
    taskReferenceName = serializers.RegexField(NOT_BLANK, help_text="Unique within the definition.")
    type = serializers.ChoiceField(
        choices=["SIMPLE", "WAIT", "HUMAN", "EVENT", "SET_VARIABLE", "TERMINATE"], required=False, allow_null=True,
        help_text="Default SIMPLE.",
    )
    inputParameters = serializers.DictField(required=False, allow_null=True,
                                            help_text="Values may hold ${...} placeholders.")
    sink = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                 help_text="Required by EVENT tasks: conductor, conductor:x or kind:queue.")
    asyncComplete = serializers.BooleanField(required=False, allow_null=True)


class WorkflowDefSerializer(serializers.Serializer):
    name = serializers.RegexField(NAME_PATTERN.pattern, help_text="e.g. shipping_workflow")
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**31 - 1,
                                       help_text="Omitted or null: 1.")
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    tasks = serializers.ListField(child=WorkflowTaskSerializer(), min_length=1)
    inputParameters = serializers.ListField(child=serializers.CharField(allow_blank=True), required=False,
                                            allow_null=True)
    outputParameters = serializers.DictField(required=False, allow_null=True)
    createTime = serializers.IntegerField(required=False, read_only=True)
    updateTime = serializers.IntegerField(required=False, read_only=True)


class StartWorkflowRequestSerializer(serializers.Serializer):
    name = serializers.RegexField(NOT_BLANK)
    version = serializers.IntegerField(required=False, allow_null=True, help_text="Omitted or null: the latest.")
    correlationId = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    input = serializers.DictField(required=False, allow_null=True)
    taskToDomain = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False,
                                         allow_null=True)
    idempotencyKey = serializers.CharField(
        required=False, allow_null=True, allow_blank=True,
        help_text="A repeated key returns the workflow it already started.",
    )
    priority = serializers.IntegerField(required=False, allow_null=True)


class TaskSerializer(serializers.Serializer):
    taskId = serializers.CharField()
    taskType = serializers.CharField()
    taskDefName = serializers.CharField()
    referenceTaskName = serializers.CharField()
    status = serializers.CharField()
    inputData = serializers.DictField()
    outputData = serializers.DictField()
    reasonForIncompletion = serializers.CharField(required=False)
    workerId = serializers.CharField(required=False)
    domain = serializers.CharField(required=False)
    seq = serializers.IntegerField()
    pollCount = serializers.IntegerField()
    retryCount = serializers.IntegerField()
    workflowInstanceId = serializers.CharField()
    workflowType = serializers.CharField()
    correlationId = serializers.CharField(required=False)
    scheduledTime = serializers.IntegerField()
    startTime = serializers.IntegerField()
    endTime = serializers.IntegerField()
    updateTime = serializers.IntegerField()
    workflowTask = serializers.DictField(required=False)


class WorkflowSerializer(serializers.Serializer):
    workflowId = serializers.CharField()
    workflowName = serializers.CharField()
    workflowVersion = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["RUNNING", "COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED", "PAUSED"])
    correlationId = serializers.CharField(required=False)
    idempotencyKey = serializers.CharField(required=False)
    input = serializers.DictField()
    output = serializers.DictField()
    variables = serializers.DictField()
    taskToDomain = serializers.DictField()
    event = serializers.CharField(required=False, help_text="The event whose handler started it.")
    reasonForIncompletion = serializers.CharField(required=False)
    createTime = serializers.IntegerField()
    startTime = serializers.IntegerField()
    updateTime = serializers.IntegerField()
    endTime = serializers.IntegerField(required=False)
    priority = serializers.IntegerField()
    tasks = TaskSerializer(many=True)
    failedReferenceTaskNames = serializers.ListField(child=serializers.CharField(), required=False)


class TaskResultSerializer(serializers.Serializer):
    taskId = serializers.CharField()
    workflowInstanceId = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    status = serializers.ChoiceField(choices=["IN_PROGRESS", "COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR"])
    outputData = serializers.DictField(required=False, allow_null=True, help_text="Merged over the task's output.")
    reasonForIncompletion = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    workerId = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class WorkflowErrorSerializer(serializers.Serializer):
    """Conductor's error body."""

    status = serializers.IntegerField()
    message = serializers.CharField()
    instance = serializers.CharField(required=False)
    retryable = serializers.BooleanField()
    validationErrors = serializers.ListField(child=serializers.DictField(), required=False)
