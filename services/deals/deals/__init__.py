"""The deals service."""
