"""The reports service: a read model of the other services' events, answering the head of sales' reports."""
