"""The clients service: the client base, contacts, interactions, touchpoints and the timeline."""
