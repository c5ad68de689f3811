"""Errors of the webhooks service; each travels to the gateway as its shared category.

A docstring is the error's message when none is given (see ``CrmError``).
"""

from crm_common.errors import NotFound

__all__ = ["WebhookNotFound"]


class WebhookNotFound(NotFound):
    """webhook not found"""
