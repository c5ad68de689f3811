"""Errors of the reports service; each travels to the gateway as its shared category.

A docstring is the error's message when none is given (see ``CrmError``).
"""

from crm_common.errors import NotFound, Unavailable


class PipelineNotFound(NotFound):
    """pipeline not found"""


class BranchNotFound(NotFound):
    """branch not found"""


class PlanNotFound(NotFound):
    """plan not found"""


class Rebuilding(Unavailable):
    """the reports are being rebuilt; the event waits until the rebuild is done"""
