"""Identity, branches, roles: login, the caller, branches and users."""

from __future__ import annotations

from crm_common.contracts.identity import (
    BranchCreateSchema,
    BranchSchema,
    LoginSchema,
    TokenSchema,
    UserCreateSchema,
    UserQuerySchema,
    UserSchema,
    UserUpdateSchema,
)
from crm_common.schemas import PageQuerySchema, page_schema
from gateway import identity, telephony
from gateway.http import api
from gateway.routes.common import query_args
from gateway.throttle import client_address

BranchPage = page_schema(BranchSchema, "BranchPage")
UserPage = page_schema(UserSchema, "UserPage")


class IdentityRoutes:
    @api("POST", "/auth/login", public=True, body=LoginSchema, response=TokenSchema, errors=(401, 422, 429),
         summary="Log in", tag="identity")
    def login(self, request, caller):
        """Exchange email and password for a bearer token.

        ``{"email": "admin@crm.local", "password": "..."}`` → ``{"access_token": "...", "token_type": "bearer",
        "expires_in": 28800}``. Five failed logins for an email, or twenty from one address, lock it out for
        a while (429 with Retry-After); each attempt is counted before its password is checked.
        """
        address = client_address(request, self.settings.trusted_proxies)
        return identity.login(self.db, self.settings, request.json_body, address)

    @api("POST", "/auth/logout", status=204, errors=(401,), summary="Log out: end the token in use", tag="identity")
    def logout(self, request, caller):
        """The bearer token this request carries stops working at once, on every gateway: from now on it gets 401.
        The user's other sessions (tokens of other logins) keep working. 204, no body. API keys are not tokens
        (403): an administrator revokes them (``DELETE /api-keys/{id}``)."""
        with self.db.transaction():
            self.auth.revoke(self.db.session, request, caller)
        self.auth.forget(caller.id)
        return 204, None

    @api("GET", "/me", response=UserSchema, errors=(404,), summary="The caller", tag="identity")
    def me(self, request, caller):
        """The user behind the token: ``{id, email, name, role, branch_id, active}``."""
        return identity.get_user(self.db.reader, caller, caller.id)

    @api("POST", "/branches", status=201, roles=("admin",), body=BranchCreateSchema, response=BranchSchema,
         errors=(403, 409, 422), summary="Create a branch", tag="identity")
    def create_branch(self, request, caller):
        """Admin only. ``{"name": "Москва", "code": "MSK"}`` → 201 branch; codes are unique (409)."""
        with self.db.transaction():
            return 201, identity.create_branch(self.db, caller, request.json_body)

    @api("GET", "/branches", query=PageQuerySchema, response=BranchPage, summary="List branches", tag="identity")
    def list_branches(self, request, caller):
        """An admin sees every branch; anyone else sees their own."""
        return identity.list_branches(self.db.reader, caller, query_args(request))

    @api("GET", "/branches/<branch_id>", response=BranchSchema, errors=(404,), summary="One branch", tag="identity")
    def get_branch(self, request, caller, branch_id):
        """A branch the caller belongs to (any branch for an admin)."""
        return identity.get_branch(self.db.reader, caller, branch_id)

    @api("POST", "/users", status=201, roles=("admin", "head"), body=UserCreateSchema, response=UserSchema,
         errors=(403, 409, 422), summary="Create a user", tag="identity")
    def create_user(self, request, caller):
        """An admin creates anyone; a head creates managers of their own branch.

        ``{"email": "anna@example.ru", "name": "Анна", "password": "s3cret-pass", "role": "manager",
        "branch_id": "..."}`` → 201 user (never a password or hash).
        """
        with self.db.transaction():
            user = identity.create_user(self.db, caller, request.json_body)
        self.auth.forget(telephony.PEOPLE)  # other gateways hear of it from the notification
        return 201, user

    @api("GET", "/users", query=UserQuerySchema, response=UserPage, summary="List users", tag="identity")
    def list_users(self, request, caller):
        """Users of the caller's branch (every branch for an admin); filters: branch_id, role, active, q."""
        return identity.list_users(self.db.reader, caller, query_args(request))

    @api("GET", "/users/<user_id>", response=UserSchema, errors=(404,), summary="One user", tag="identity")
    def get_user(self, request, caller, user_id):
        """A user of the caller's branch (any for an admin); others are 404."""
        return identity.get_user(self.db.reader, caller, user_id)

    @api("PATCH", "/users/<user_id>", body=UserUpdateSchema, response=UserSchema, errors=(403, 404, 409, 422),
         summary="Change a user", tag="identity")
    def update_user(self, request, caller, user_id):
        """``{"active": false}`` deactivates: the user cannot log in and their tokens stop working at once.

        A password change also ends every session of the user. Managers change only their own name and password.
        """
        with self.db.transaction():
            user = identity.update_user(self.db, caller, user_id, request.json_body)
        self.auth.forget(user["id"])
        self.auth.forget(telephony.PEOPLE)
        return user
