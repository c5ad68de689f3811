"""Schemas of the webhooks service's RPC inputs and outputs (the contract lives in crm_common.contracts.webhooks)."""

from crm_common.contracts.webhooks import (
    DeliveryQuerySchema,
    DeliverySchema,
    WebhookCreateSchema,
    WebhookQuerySchema,
    WebhookSchema,
    WebhookUpdateSchema,
)

__all__ = ["DeliveryQuerySchema", "WebhookCreateSchema", "WebhookQuerySchema", "WebhookUpdateSchema",
           "delivery_out", "webhook_out"]

webhook_out = WebhookSchema()
delivery_out = DeliverySchema()
