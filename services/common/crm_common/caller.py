"""Who is calling: passed by the gateway as the first argument of every RPC.

Services enforce visibility from it themselves, so no route can forget the rules:
admin sees everything, a head sees their branch, a manager sees what they own in their branch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import and_, false, true

from crm_common.errors import BadRequest, Forbidden, ValidationError

ROLES = ("admin", "head", "manager")


@dataclass(frozen=True)
class Caller:
    id: str
    role: str
    branch_id: str | None

    @classmethod
    def load(cls, data) -> Caller:
        if isinstance(data, Caller):
            return data
        try:
            caller_id, role = data["id"], data["role"]
            branch_id = data.get("branch_id")
        except (TypeError, KeyError, AttributeError):
            raise BadRequest("caller identity missing or malformed") from None
        if not isinstance(caller_id, str) or not caller_id or not isinstance(role, str):
            raise BadRequest("caller identity missing or malformed")
        caller = cls(id=caller_id, role=role, branch_id=branch_id)
        if caller.role not in ROLES:
            raise BadRequest(f"unknown role {caller.role!r}")
        if caller.role != "admin" and not caller.branch_id:
            raise Forbidden("a head or manager must belong to a branch")
        return caller

    def dump(self) -> dict:
        return asdict(self)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_head(self) -> bool:
        return self.role == "head"

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"

    def can_see(self, branch_id: str | None, owner_id: str | None) -> bool:
        if self.is_admin:
            return True
        if branch_id != self.branch_id:
            return False
        return self.is_head or owner_id == self.id

    def visibility(self, model):
        """A SQL condition limiting ``model`` (with branch_id and owner_id columns) to what the caller sees."""
        if self.is_admin:
            return true()
        if not self.branch_id:
            return false()
        if self.is_head:
            return model.branch_id == self.branch_id
        return and_(model.branch_id == self.branch_id, model.owner_id == self.id)

    def owner_for(self, owner_id: str | None, branch_id: str, directory: dict | None, default: str | None,
                  record: str = "client") -> str | None:
        """Who owns a record (a client, a deal) that this caller creates or reassigns in ``branch_id``.

        A manager owns what they create and cannot give it away; a head or an admin may name any
        active user of the record's branch, as ``directory`` (``{"users": {id: {branch_id, active}}}``,
        from the gateway) describes them; naming nobody gives ``default``.
        """
        if self.is_manager:
            if owner_id not in (None, self.id):
                raise Forbidden(f"a manager cannot give a {record} to someone else")
            return self.id
        if owner_id is None:
            return default
        user = ((directory or {}).get("users") or {}).get(owner_id)
        if not user or not user.get("active") or user.get("branch_id") != branch_id:
            raise ValidationError(
                "owner is not an active user of the branch",
                fields={"owner_id": [f"Not an active user of the {record}'s branch."]},
            )
        return owner_id

    def target_branch(self, requested: str | None) -> str:
        """The branch a new record goes to: the caller's own, or the one an admin names."""
        if self.is_admin:
            branch = requested or self.branch_id
            if not branch:
                raise ValidationError("branch_id is required", fields={"branch_id": ["Required for an administrator."]})
            return branch
        if requested and requested != self.branch_id:
            raise Forbidden("only an administrator may act in another branch")
        return self.branch_id
