"""The webhooks nameko service: RPC entrypoints to manage webhooks, one handler per deliverable event, the
purge timer; the delivery workers run beside them (``workers.DeliveryWorkers``)."""

from __future__ import annotations

import logging

from nameko.timer import timer

from crm_common.caller import Caller
from crm_common.config import SettingsProvider
from crm_common.contracts.webhooks import WEBHOOK_EVENTS
from crm_common.db import Database
from crm_common.errors import BadRequest
from crm_common.events import EVENT_SOURCES
from crm_common.handlers import event_handler
from crm_common.rpc import rpc
from crm_common.schemas import load_or_raise
from webhooks import commands, domain, sender
from webhooks.models import Base
from webhooks.schemas import WebhookQuerySchema
from webhooks.workers import DeliveryWorkers

log = logging.getLogger(__name__)


class WebhooksService:
    name = "webhooks"

    db = Database(Base)
    settings = SettingsProvider()
    deliveries = DeliveryWorkers()

    def _checked(self, data: dict) -> dict:
        """The URL in ``data`` (if any) checked now, before the transaction: its host resolved, every address
        allowed (DNS is a remote call: never inside a transaction)."""
        if "url" in data:
            try:
                sender.check_url(data["url"], self.settings.webhook_allow_private)
            except domain.UrlRefused as exc:
                raise commands.url_refused(exc) from None
        return data

    @rpc
    def create_webhook(self, caller, data):
        """``create_webhook(caller, {"url": "https://erp.example.com/crm-hooks", "events": ["client_created",
        "deal_won"], "secret": "whsec_4f9a0c...", "branch_id": null})`` → the webhook (never its secret)."""
        caller = Caller.load(caller)
        data = self._checked(commands.load_new_webhook(data))
        return self.db.write(lambda: commands.create_webhook(self.db, caller, data, self.deliveries.box))

    @rpc
    def update_webhook(self, caller, webhook_id, changes):
        """``update_webhook(caller, id, {"active": true})`` re-activates a failing webhook; also ``url``,
        ``events``, ``secret``, ``active: false`` (pause)."""
        caller = Caller.load(caller)
        changes = self._checked(commands.load_changes(changes))
        result = self.db.write(lambda: commands.update_webhook(self.db, caller, webhook_id, changes,
                                                               self.deliveries.box))
        self.deliveries.wake()
        return result

    @rpc
    def delete_webhook(self, caller, webhook_id):
        """``delete_webhook(caller, id)`` → the webhook as it was; it and its deliveries are gone."""
        return self.db.write(lambda: commands.delete_webhook(self.db, Caller.load(caller), webhook_id))

    @rpc
    def get_webhook(self, caller, webhook_id):
        """One webhook the caller may manage."""
        return commands.get_webhook(self.db.reader, Caller.load(caller), webhook_id)

    @rpc
    def list_webhooks(self, caller, query=None):
        """``list_webhooks(caller, {"status": "failing", "event": "deal_won"})`` → ``{items, next_cursor}``, newest
        first."""
        filters = load_or_raise(WebhookQuerySchema, query or {}, BadRequest)
        return commands.list_webhooks(self.db.reader, Caller.load(caller), filters)

    @rpc
    def list_deliveries(self, caller, webhook_id, query=None):
        """``list_deliveries(caller, id, {"status": "pending"})`` → ``{items, next_cursor}``, newest first, each
        delivery with its attempts (time, duration, the receiver's status code, the error)."""
        return commands.list_deliveries(self.db.reader, Caller.load(caller), webhook_id, query)

    @rpc
    def reseal_secrets(self):
        """For operators after changing ``CRM_WEBHOOK_KEY`` (the old key in ``CRM_WEBHOOK_OLD_KEYS``): every
        secret sealed with an old key is sealed with the current one. ``{"resealed": 3}``"""
        return {"resealed": self.db.write(lambda: commands.reseal_secrets(self.db, self.deliveries.box))}

    @rpc
    def health(self):
        """``health()`` → ``{"service": "webhooks", "database": "ok"}``; raises if the database is down."""
        self.db.ping()
        return {"service": self.name, "database": "ok"}

    @timer(interval=3600)
    def purge_deliveries(self):
        """Forget deliveries finished more than ``CRM_WEBHOOK_KEEP_DAYS`` ago (and give up on any still pending
        that long)."""
        with self.db.transaction():
            expired, deleted = commands.purge(self.db, self.settings.webhook_keep_days)
        if expired or deleted:
            log.info("purged %d old deliveries; gave up on %d pending for too long", deleted, expired)

    def record(self, event_type: str, payload: dict) -> None:
        with self.db.transaction():
            recorded = commands.record_event(self.db, event_type, payload)
        if recorded:
            self.deliveries.wake()


def _delivering_handler(event_type: str):
    """``handle_<event>`` for an event of ``WEBHOOK_EVENTS``: it becomes a delivery for each webhook taking it."""

    def handle(self, payload):
        self.record(event_type, payload)

    handle.__name__ = handle.__qualname__ = f"handle_{event_type}"
    return event_handler(EVENT_SOURCES[event_type], event_type)(handle)


for _event_type in WEBHOOK_EVENTS:
    setattr(WebhooksService, f"handle_{_event_type}", _delivering_handler(_event_type))
