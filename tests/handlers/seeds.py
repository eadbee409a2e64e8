"""The three handlers of the product's documentation, verbatim."""

START_SHIPPING = {
    "name": "start_shipping_workflow",
    "event": "sqs:shipping_start",
    "condition": "",
    "actions": [
        {
            "action": "start_workflow",
            "start_workflow": {
                "name": "shipping_workflow",
                "version": 1,
                "input": {
                    "customerName": "${customer.name}",
                    "address": {
                        "street": "${customer.address.street}",
                        "city": "${customer.address.city}",
                        "zip": "${customer.address.zip}",
                    },
                },
            },
            "expandInlineJSON": False,
        }
    ],
    "active": True,
}

COMPLETE_DOCUSIGN = {
    "name": "complete_docusign_human_task_event",
    "event": "sqs:conductor_docusign_completed",
    "condition": "",
    "actions": [
        {
            "action": "complete_task",
            "complete_task": {
                "workflowId": "${workflowInstanceId}",
                "taskRefName": "human_docusign_step_ref",
                "input": {},
            },
            "expandInlineJSON": False,
        }
    ],
    "active": True,
}

FAIL_DOCUSIGN = {
    "name": "fail_docusign_human_task_event",
    "event": "sqs:conductor_docusign_failed",
    "condition": "",
    "actions": [
        {
            "action": "fail_task",
            "fail_task": {
                "workflowId": "${workflowInstanceId}",
                "taskRefName": "human_docusign_step_ref",
                "input": {},
            },
            "expandInlineJSON": False,
        }
    ],
    "active": True,
}

SEEDS = [START_SHIPPING, COMPLETE_DOCUSIGN, FAIL_DOCUSIGN]
