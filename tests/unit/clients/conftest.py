"""The clients use cases run on crm_common's fake unit of work (in-memory SQLite, events in a list)."""

import pytest

from clients.models import Base
from crm_common.testing.uow import FakeUnitOfWork


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit
