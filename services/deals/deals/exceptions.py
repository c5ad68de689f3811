"""Errors of the deals service; each travels to the gateway as its shared category."""

from crm_common.errors import NotFound


class DealNotFound(NotFound):
    """No such deal."""

    def __init__(self, message: str = "deal not found", fields=None, details=None):
        super().__init__(message, fields, details)


class PipelineNotFound(NotFound):
    """No such pipeline."""

    def __init__(self, message: str = "pipeline not found", fields=None, details=None):
        super().__init__(message, fields, details)


class ScriptNotFound(NotFound):
    """No such script."""

    def __init__(self, message: str = "script not found", fields=None, details=None):
        super().__init__(message, fields, details)
