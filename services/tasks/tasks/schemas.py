"""Schemas of the tasks service's RPC inputs and outputs (the contract lives in crm_common.contracts.tasks).

Inputs are loaded with the schema classes (``load_or_raise`` keeps one instance per class); outputs are
dumped with the instances below.
"""

from crm_common.contracts.tasks import (
    AutomationCreateSchema,
    AutomationQuerySchema,
    AutomationSchema,
    ChecklistTickSchema,
    ComplaintCreateSchema,
    ComplaintQuerySchema,
    ComplaintSchema,
    ComplaintUpdateSchema,
    ExportQuerySchema,
    NotificationQuerySchema,
    NotificationSchema,
    PenaltyQuerySchema,
    PenaltySchema,
    ReasonSchema,
    TaskCreateSchema,
    TaskQuerySchema,
    TaskSchema,
    TaskUpdateSchema,
    TemplateCreateSchema,
    TemplateQuerySchema,
    TemplateSchema,
    TemplateUpdateSchema,
)

__all__ = [
    "AutomationCreateSchema", "AutomationQuerySchema", "ChecklistTickSchema", "ComplaintCreateSchema",
    "ComplaintQuerySchema", "ComplaintUpdateSchema", "ExportQuerySchema", "NotificationQuerySchema",
    "PenaltyQuerySchema", "ReasonSchema", "TaskCreateSchema", "TaskQuerySchema", "TaskUpdateSchema",
    "TemplateCreateSchema", "TemplateQuerySchema", "TemplateUpdateSchema",
    "automation_out", "complaint_out", "notification_out", "penalty_out", "task_out", "template_out",
]

task_out = TaskSchema()
penalty_out = PenaltySchema()
template_out = TemplateSchema()
automation_out = AutomationSchema()
complaint_out = ComplaintSchema()
notification_out = NotificationSchema()
