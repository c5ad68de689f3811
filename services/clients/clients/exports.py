"""What the clients service exports for rebuilding read models (``crm_common.exports``)."""

from __future__ import annotations

from clients.domain import touchpoint_source
from clients.models import Campaign, Client, Interaction, Touchpoint
from clients.schemas import client_out, interaction_out
from clients.segments import dump_campaign
from crm_common.exports import check_export_args, export_page
from crm_common.schemas import iso

KINDS = ("clients", "interactions", "touchpoints", "campaigns")


def _touchpoint(row: Touchpoint) -> dict:
    """Shaped like ``touchpoint_recorded`` (without the event's own fields)."""
    return {
        "touchpoint_id": row.id, "client_id": row.client_id, "branch_id": row.branch_id, "channel": row.channel,
        "source": touchpoint_source(row.channel, row.utm or {}), "created": row.created_client,
        "utm": row.utm or {}, "recorded_by": row.recorded_by, "created_at": iso(row.created_at),
    }


DUMPS = {
    "clients": (Client, lambda rows: [client_out.dump(r) for r in rows]),
    "interactions": (Interaction, lambda rows: [interaction_out.dump(r) for r in rows]),
    "touchpoints": (Touchpoint, lambda rows: [_touchpoint(r) for r in rows]),
    "campaigns": (Campaign, lambda rows: [dump_campaign(r) for r in rows]),  # as campaign_created carries them
}


def export(session, kind, cursor, limit) -> dict:
    limit = check_export_args(KINDS, kind, cursor, limit)
    model, dump_rows = DUMPS[kind]
    return export_page(session, model, cursor, limit, dump_rows)
