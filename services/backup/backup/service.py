"""The backup nameko service: starts backups (on the schedule, or asked), lists and verifies them, and
tells /health how fresh the newest verified backup is. The work itself runs in a worker process
(``backup.jobs``); rules live in commands and domain."""

from __future__ import annotations

import logging
from datetime import datetime

from backup import commands, domain
from backup.jobs import Jobs
from backup.keys import load_keyring
from backup.models import Base
from crm_common.caller import Caller
from crm_common.clock import utcnow
from crm_common.config import ConfigError, Settings, SettingsProvider
from crm_common.contracts.backup import BackupQuerySchema
from crm_common.db import Database
from crm_common.errors import BadRequest, Forbidden
from crm_common.rpc import rpc
from crm_common.schemas import load_or_raise
from crm_common.timer import settings_timer

log = logging.getLogger(__name__)


class CatalogueDatabase(Database):
    """The catalogue; at start it checks the schedule and the key (making the development key if needed)
    and records the installation's first start."""

    def setup(self):
        super().setup()
        settings = Settings.from_config(self.container.config)
        try:
            domain.check_schedule(settings.backup_schedule)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        keyring = load_keyring(settings)
        log.info("backups: schedule %r, key id %s (%s)", settings.backup_schedule, keyring.current_id, keyring.source)


def _accepted(backup) -> dict | None:
    return None if backup is None else {"id": backup.id, "status": backup.status}


def _admin(caller) -> Caller:
    caller = Caller.load(caller)
    if not caller.is_admin:
        raise Forbidden("backups are for administrators")
    return caller


class BackupService:
    name = "backup"

    db = CatalogueDatabase(Base)
    settings = SettingsProvider()
    jobs = Jobs()

    @rpc
    def start_backup(self, caller):
        """``start_backup(caller)`` → ``{"id": ..., "status": "running"}``; the backup runs in the background.
        409 while another backup runs."""
        caller = _admin(caller)
        # the result is JSON: a redelivered request gets it back from the command log (the worker it would
        # launch again finds the backup claimed and does nothing)
        started = self.db.write(lambda: _accepted(commands.start_backup(self.db, "manual", requested_by=caller.id)))
        self.jobs.launch("backup", started["id"])
        return started

    @rpc
    def list_backups(self, caller, query=None):
        """``list_backups(caller, {"status": "done", "limit": 20})`` → ``{items, next_cursor}``, newest first."""
        _admin(caller)
        filters = load_or_raise(BackupQuerySchema, query or {}, BadRequest)
        return commands.list_backups(self.db.reader, filters)

    @rpc
    def get_backup(self, caller, backup_id):
        """One backup with its databases (rows per table), its off-site copies and its verification."""
        _admin(caller)
        return commands.dump_backup(self.db.reader, commands.get_backup(self.db.reader, backup_id))

    @rpc
    def verify_backup(self, caller, backup_id):
        """Restore the backup into scratch databases and compare every table, in the background:
        ``verify_backup(caller, id)`` → ``{"id": ..., "status": "done", "verifying": true}``."""
        _admin(caller)
        verification_id = self.db.write(lambda: commands.start_verification(self.db, backup_id, "manual").id)
        self.jobs.launch("verify", verification_id)
        backup = commands.get_backup(self.db.reader, backup_id)
        return {"id": backup.id, "status": backup.status, "verifying": True}

    @rpc
    def health(self):
        """``{"service": "backup", "database": "ok", "backups": {"age_s": ..., "stale": false, ...}}``"""
        return {"service": "backup", "database": "ok",
                "backups": commands.freshness(self.db.reader, self.settings.backup_schedule)}

    @settings_timer("backup_check_interval_s", eager=True)
    def check_schedule(self):
        """Start the backup of the schedule's latest tick if no replica has (the tick is unique in the
        catalogue, so one backup runs per tick); mark jobs whose worker died as failed."""
        self.db.write(lambda: commands.reap_silent(self.db))
        first_started = self.db.write(lambda: commands.installation_started(self.db).isoformat())
        first_started = datetime.fromisoformat(first_started)
        tick = domain.due_tick(self.settings.backup_schedule, utcnow())
        if tick < first_started:
            return  # ticks before this installation first started are not owed
        try:
            started = self.db.write(lambda: _accepted(commands.start_backup(self.db, "schedule", tick=tick)))
        except commands.BackupRunning:
            return  # the tick is taken once the running backup ends
        if started is not None:
            log.info("scheduled backup %s for %s", started["id"], tick.isoformat())
            self.jobs.launch("backup", started["id"])
