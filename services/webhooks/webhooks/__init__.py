"""Outgoing webhooks: events delivered, signed, to the URLs integrators give."""
