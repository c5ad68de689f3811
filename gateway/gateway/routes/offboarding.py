"""Offboarding: a leaving user's clients, open deals and open tasks handed to another user in one step
(gateway/offboarding.py runs the saga; decisions.md 64-66)."""

from __future__ import annotations

from crm_common.contracts.offboarding import OffboardingQuerySchema, OffboardingSchema, OffboardSchema
from crm_common.schemas import page_schema
from crm_common.timer import ReplicaName, Wake, wakeable_timer
from gateway import offboarding, telephony
from gateway.http import api
from gateway.routes.common import query_args

OffboardingPage = page_schema(OffboardingSchema, "OffboardingPage")


class OffboardingRoutes:
    replica = ReplicaName()
    wake_offboardings = Wake("resume_offboardings")

    @api("POST", "/users/<id>/offboard", status=202, roles=("admin", "head"), body=OffboardSchema,
         response=OffboardingSchema, errors=(403, 404, 409, 422), summary="Offboard a user", tag="identity")
    def offboard_user(self, request, caller, id):
        """``{"to_user_id": "..."}`` → 202 ``{id, status: "running", ...}``: the user is deactivated at once (their
        tokens stop working) and every client they own, every open deal and open task goes to ``to_user_id``, an
        active user of the same branch; ``GET /offboardings/{id}`` follows it. Won and lost deals, done and
        cancelled tasks, and penalties stay theirs. A head offboards the managers of their branch, an administrator
        anyone but an administrator. A user with an offboarding running, or offboarded and still inactive: 409."""
        with self.db.transaction():
            saga = offboarding.start(self.db, caller, id, request.json_body)
        self.auth.forget(saga["user_id"])
        self.auth.forget(telephony.PEOPLE)
        self.wake_offboardings()
        return 202, saga

    @api("GET", "/offboardings", roles=("admin", "head"), query=OffboardingQuerySchema, response=OffboardingPage,
         errors=(403,), summary="List offboardings", tag="identity")
    def list_offboardings(self, request, caller):
        """Newest first; a head sees their branch's. Filters: ``user_id``, ``status``."""
        return offboarding.list_offboardings(self.db.reader, caller, query_args(request))

    @api("GET", "/offboardings/<id>", roles=("admin", "head"), response=OffboardingSchema, errors=(403, 404),
         summary="One offboarding", tag="identity")
    def get_offboarding(self, request, caller, id):
        """``{id, user_id, to_user_id, status: running|done|failed, step, clients, deals, tasks, started_at,
        finished_at, error}``: the counts grow batch by batch while it runs; ``error`` says why a step is waiting
        (a service down: it is tried again every ``CRM_OFFBOARD_POLL_S``)."""
        return offboarding.get(self.db.reader, caller, id)

    @wakeable_timer("offboard_poll_s")
    def resume_offboardings(self):
        """Run the sagas that are running and that no gateway holds: new ones, and those a crash or a service
        that did not answer left half-way."""
        settings = self.settings
        steps = {"clients": self.clients_rpc.transfer_clients, "deals": self.deals_rpc.transfer_deals,
                 "tasks": self.tasks_rpc.transfer_tasks}
        steps = {step: call for step, call in steps.items() if step in settings.services}
        return offboarding.run_due(self.db, self.replica, steps, settings.offboard_batch, settings.offboard_lease_s,
                                   settings.offboard_poll_s)
