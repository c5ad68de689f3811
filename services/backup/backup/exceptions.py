"""Errors of the backup service, subclasses of the shared ones (one HTTP status each)."""

from crm_common.errors import Conflict, NotFound


class BackupNotFound(NotFound):
    """No such backup."""


class BackupRunning(Conflict):
    """A backup is running already."""


class VerificationRunning(Conflict):
    """A verification is running already."""


class NotVerifiable(Conflict):
    """Only a finished backup with its archive can be verified."""
