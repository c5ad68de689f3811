"""The gateway nameko service: the HTTP API in front of the services; it owns identity.

Routes live in ``gateway/routes/`` (one module per API section); this class puts them together with
the dependencies they use.
"""

from __future__ import annotations

import logging

from nameko.timer import timer

from crm_common.config import SettingsProvider
from crm_common.db import Database
from crm_common.rpc import ClusterRpc, RpcProxy, rpc
from crm_common.timer import ReplicaName, Wake, settings_timer, wakeable_timer
from gateway import auth as tokens
from gateway import exports, identity, recordings, throttle
from gateway.audit import Audit
from gateway.auth import Auth
from gateway.idempotency import Idempotency, purge_expired
from gateway.models import Base
from gateway.ratelimit import RateLimit
from gateway.routes.audit import AuditRoutes
from gateway.routes.backups import BackupRoutes
from gateway.routes.clients import ClientRoutes
from gateway.routes.deals import DealRoutes
from gateway.routes.exports import ExportRoutes
from gateway.routes.identity import IdentityRoutes
from gateway.routes.imports import ImportRoutes
from gateway.routes.integrations import IntegrationRoutes
from gateway.routes.merges import MergeRoutes
from gateway.routes.notifications import NotificationRoutes
from gateway.routes.offboarding import OffboardingRoutes
from gateway.routes.reports import ReportRoutes
from gateway.routes.segments import SegmentRoutes
from gateway.routes.system import SystemRoutes
from gateway.routes.tasks import TaskRoutes
from gateway.routes.webhooks import WebhookRoutes

log = logging.getLogger(__name__)


class IdentityDatabase(Database):
    """The gateway's database; before the web server listens it creates the first administrator if there is no user."""

    def setup(self):
        super().setup()
        with self.session_factory() as session:
            identity.bootstrap_admin(session, self.settings)


class GatewayService(IdentityRoutes, ClientRoutes, MergeRoutes, ImportRoutes, DealRoutes, TaskRoutes, NotificationRoutes,
                     ReportRoutes, SegmentRoutes, BackupRoutes, WebhookRoutes, IntegrationRoutes, OffboardingRoutes,
                     ExportRoutes, SystemRoutes, AuditRoutes):
    name = "gateway"

    db = IdentityDatabase(Base)
    settings = SettingsProvider()
    auth = Auth()
    audit = Audit()
    rate_limit = RateLimit()
    idempotency = Idempotency()
    clients_rpc = RpcProxy("clients")
    deals_rpc = RpcProxy("deals")
    tasks_rpc = RpcProxy("tasks")
    reports_rpc = RpcProxy("reports")
    backup_rpc = RpcProxy("backup")
    webhooks_rpc = RpcProxy("webhooks")
    services = ClusterRpc(timeout=2)
    recordings = recordings.RecordingStore()
    replica = ReplicaName()
    wake_exports = Wake("run_exports")

    @rpc
    def export(self, kind, cursor=None, limit=500):
        """Identity for rebuilding read models: ``export("users")`` → ``{items, next_cursor, total}``; kinds:
        users, branches (``crm_common.exports``). The only RPC of the gateway: services never call it."""
        return identity.export(self.db.reader, kind, cursor, limit)

    @timer(interval=3600)
    def purge_idempotency_records(self):
        """Forget Idempotency-Key answers older than 24 hours."""
        removed = purge_expired(self.db.session)
        if removed:
            log.info("purged %d idempotency records", removed)

    @timer(interval=3600)
    def purge_login_attempts(self):
        """Forget login counts whose window and lock-out are over."""
        throttle.purge(self.db.session, self.settings)

    @timer(interval=3600)
    def purge_revoked_tokens(self):
        """Forget logged-out tokens that have expired anyway."""
        tokens.purge_revoked_tokens(self.db.session)

    @settings_timer("recording_sweep_interval_s")
    def delete_old_recordings(self):
        """Delete call recordings kept longer than CRM_RECORDING_KEEP_DAYS (and uploads a crash left behind)."""
        removed = recordings.sweep(self.db, self.recordings, self.settings.recording_keep_days)
        if removed:
            log.info("deleted %d recording(s) past their keeping time", removed)

    @wakeable_timer("export_poll_s")
    def run_exports(self):
        """Delete expired export files, then make the next export's file (at once again while there are more)."""
        removed = exports.expire(self.db)
        if removed:
            log.info("deleted the files of %d expired export(s)", removed)
        return exports.run_next(self.db, self.settings, self.clients_rpc, self.replica)
