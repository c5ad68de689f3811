"""Errors of the deals service; each travels to the gateway as its shared category.

A docstring is the error's message when none is given (see ``CrmError``).
"""

from crm_common.errors import NotFound


class DealNotFound(NotFound):
    """deal not found"""


class PipelineNotFound(NotFound):
    """pipeline not found"""


class ScriptNotFound(NotFound):
    """script not found"""
