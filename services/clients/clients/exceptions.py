"""Errors of the clients service; each travels to the gateway as its shared category."""

from crm_common.errors import Conflict, DuplicateClient, NotFound


class ClientNotFound(NotFound):
    """client not found"""  # the message when none is given (see CrmError)


class DuplicateContact(DuplicateClient):
    """A client with this phone or email already exists in the branch."""

    def __init__(self, existing_id: str, message: str = "a client with this phone or email already exists in the branch"):
        super().__init__(message, details={"existing_id": existing_id})


class ClientHasOpenDeals(Conflict):
    """The client has open deals."""

    def __init__(self, open_deals: list[dict], action: str = "archiving"):
        super().__init__(
            f"the client has {len(open_deals)} open deal(s); close each as won or lost "
            f"(POST /api/v1/deals/{{id}}/stage) before {action}",
            details={"open_deal_ids": [deal["id"] for deal in open_deals]},
        )


class ClientMerged(Conflict):
    """The client was merged into another one: it is a redirect now, and takes no writes."""

    def __init__(self, merged_into: str):
        super().__init__(
            f"the client was merged into client {merged_into}; use that one",
            details={"merged_into": merged_into},
        )


class ImportNotFound(NotFound):
    """import not found"""


class SegmentNotFound(NotFound):
    """segment not found"""


class CampaignNotFound(NotFound):
    """campaign not found"""
