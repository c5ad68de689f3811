"""The rows bench/ writes straight into the clients database are the rows the service would have written."""

import time
import uuid

from bench.people import People
from bench.rows import CLIENT_COLUMNS, client_chunks
from clients.domain import search_term


def test_seeded_clients_carry_the_search_columns_the_clients_service_searches():
    branch, manager = str(uuid.uuid4()), str(uuid.uuid4())
    ((clients, contacts, _timeline, made),) = list(client_chunks(5, branch, [manager], time.time(), People(pool=20)))

    assert len(clients) == len(made) == 5 and len(contacts) >= 5
    for row in clients:
        values = dict(zip(CLIENT_COLUMNS, row.rstrip("\n").split("\t"), strict=True))
        name = values["name"]
        assert search_term(name.split()[0], "RU") in values["search_text"]
        assert values["branch_id"] == branch and values["owner_id"] == manager
