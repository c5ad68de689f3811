"""Notifications: each user's notices (stuck deals, overdue tasks, complaints, bulk reads, failed backups)."""

from __future__ import annotations

from crm_common.contracts.tasks import NotificationQuerySchema, NotificationSchema
from crm_common.schemas import page_schema
from gateway.http import api
from gateway.routes.common import query_args

NotificationPage = page_schema(NotificationSchema, "NotificationPage")


class NotificationRoutes:
    @api("GET", "/notifications", query=NotificationQuerySchema, response=NotificationPage, errors=(400,),
         summary="Your notifications", tag="notifications")
    def list_notifications(self, request, caller):
        """Your notices, newest first: ``{id, kind, text, ref_type, ref_id, created_at, read_at}``;
        ``?unread=true`` for the ones not read yet."""
        return self.tasks_rpc.list_notifications(caller.dump(), query_args(request))

    @api("POST", "/notifications/<notification_id>/read", response=NotificationSchema, errors=(404,),
         summary="Mark a notification read", tag="notifications")
    def read_notification(self, request, caller, notification_id):
        """→ 200 the notice with ``read_at``; reading it again keeps the first time. Another user's is 404."""
        return self.tasks_rpc.read_notification(caller.dump(), notification_id)
