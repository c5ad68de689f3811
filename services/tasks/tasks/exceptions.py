"""Errors of the tasks service; each travels to the gateway as its shared category.

A docstring is the error's message when none is given (see ``CrmError``).
"""

from crm_common.errors import NotFound
from tasks.domain import ChecklistItemNotFound

__all__ = ["AutomationNotFound", "ChecklistItemNotFound", "ComplaintNotFound", "NotificationNotFound",
           "PenaltyNotFound", "TaskNotFound", "TemplateNotFound"]


class TaskNotFound(NotFound):
    """task not found"""


class PenaltyNotFound(NotFound):
    """penalty not found"""


class TemplateNotFound(NotFound):
    """task template not found"""


class AutomationNotFound(NotFound):
    """automation not found"""


class ComplaintNotFound(NotFound):
    """complaint not found"""


class NotificationNotFound(NotFound):
    """notification not found"""
