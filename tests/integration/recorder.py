"""A test service that records the events other services publish."""

from nameko.events import event_handler


class EventRecorder:
    name = "event_recorder"

    @event_handler("clients", "client_created")
    def handle_client_created(self, payload):
        return payload

    @event_handler("gateway", "user_created")
    def handle_user_created(self, payload):
        return payload

    @event_handler("deals", "deal_stage_changed")
    def handle_deal_stage_changed(self, payload):
        return payload
