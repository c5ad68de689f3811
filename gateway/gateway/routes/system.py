"""Health, the OpenAPI document and a page to read it."""

from __future__ import annotations

import time
from importlib import resources

from marshmallow import Schema, fields
from werkzeug.wrappers import Response

from crm_common.rpc import spawn_calls
from gateway.http import api, json_response


class ServiceHealthSchema(Schema):
    status = fields.String(metadata={"enum": ["ok", "down"]})
    error = fields.String(metadata={"description": "why it is down"})
    latency_ms = fields.Float()
    service = fields.String()
    database = fields.String()


class GatewayHealthSchema(Schema):
    database = fields.String(metadata={"description": "ok, or down: <reason>"})


class BackupsHealthSchema(Schema):
    status = fields.String(metadata={"enum": ["ok", "stale", "unknown"]})
    error = fields.String(metadata={"description": "why the freshness is unknown (the backup service is down)"})
    last_verified_id = fields.String(allow_none=True)
    last_verified_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    age_s = fields.Float(allow_none=True, metadata={"description": "age of the newest verified backup"})
    stale = fields.Boolean(metadata={"description": "older than two schedule periods (the HTTP status stays 200)"})
    stale_after = fields.String(metadata={"format": "date-time"})
    schedule = fields.String()
    next_run_at = fields.String(metadata={"format": "date-time"})


class HealthSchema(Schema):
    status = fields.String(metadata={"enum": ["ok", "degraded"]})
    gateway = fields.Nested(GatewayHealthSchema)
    bus = fields.String(metadata={"enum": ["ok", "down"]})
    services = fields.Dict(keys=fields.String(), values=fields.Nested(ServiceHealthSchema))
    backups = fields.Nested(BackupsHealthSchema)
    checked_in_ms = fields.Float()


class ApiIndexSchema(Schema):
    name = fields.String()
    version = fields.String()
    docs = fields.String(metadata={"description": "the API's documentation, readable in a browser"})
    openapi = fields.String(metadata={"description": "the OpenAPI 3 document"})
    health = fields.String()
    login = fields.String(metadata={"description": "POST email and password here for a bearer token"})


class SystemRoutes:
    _spec_cache: dict | None = None

    @api("GET", "", public=True, response=ApiIndexSchema, summary="Where the API's documents are", tag="system")
    def index(self, request, caller):
        """The address ``make run`` prints: ``{"name": "Sales CRM API", "version": "v1", "docs": "/api/v1/docs",
        "openapi": "/api/v1/openapi.json", "health": "/health", "login": "/api/v1/auth/login"}``."""
        return {"name": "Sales CRM API", "version": "v1", "docs": "/api/v1/docs", "openapi": "/api/v1/openapi.json",
                "health": "/health", "login": "/api/v1/auth/login"}

    @api("GET", "/health", prefix="", public=True, response=HealthSchema, answers={503: HealthSchema},
         summary="Health of the bus and every service", tag="system")
    def health(self, request, caller):
        """200 ``{"status": "ok", "bus": "ok", "services": {...}, "backups": {"status": "ok", "age_s": 3600.0,
        "stale": false, ...}}`` when the gateway's database, the bus and every service answer; 503 with the
        same shape saying which part is down otherwise. Stale backups show in ``backups``, not in the status."""
        report = {"status": "ok", "gateway": {"database": "ok"}, "bus": "ok", "services": {}}
        try:
            self.db.ping()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            report["gateway"]["database"] = f"down: {exc.__class__.__name__}"
            report["status"] = "degraded"
        names = list(self.settings.services)
        started = time.monotonic()
        results = spawn_calls([(self._ping_service, (name,)) for name in names])
        for name, result in zip(names, results):
            if isinstance(result, Exception):
                report["services"][name] = {"status": "down", "error": str(result)}
                report["status"] = "degraded"
                if "bus" in str(result):
                    report["bus"] = "down"
            else:
                report["services"][name] = {"status": "ok", **result}
        if "backup" in names:
            report["backups"] = self._backup_freshness(report["services"]["backup"])
        report["checked_in_ms"] = round((time.monotonic() - started) * 1000, 1)
        return (200 if report["status"] == "ok" else 503), report

    @staticmethod
    def _backup_freshness(answer: dict) -> dict:
        """The age of the newest verified backup; a stale one is reported, and the status stays 200
        (load balancers read it: old backups do not make the API unusable)."""
        if answer.get("status") != "ok":
            return {"status": "unknown", "error": "the backup service does not answer"}
        backups = answer.pop("backups", None) or {}
        return {"status": "stale" if backups.get("stale") else "ok", **backups}

    def _ping_service(self, name: str) -> dict:
        started = time.monotonic()
        answer = self.services[name].health()
        return {"latency_ms": round((time.monotonic() - started) * 1000, 1), **answer}

    @api("GET", "/openapi.json", public=True, raw=True, tag="system")
    def openapi(self, request, caller):
        from gateway.openapi import build_spec

        if SystemRoutes._spec_cache is None:
            SystemRoutes._spec_cache = build_spec(type(self))
        return json_response(200, SystemRoutes._spec_cache)

    @api("GET", "/docs", public=True, raw=True, tag="system")
    def docs(self, request, caller):
        page = resources.files("gateway").joinpath("docs.html").read_text(encoding="utf-8")
        return Response(page, status=200, content_type="text/html; charset=utf-8")
