import pytest

from backup.models import Base
from crm_common.testing.uow import FakeUnitOfWork


@pytest.fixture
def uow():
    with FakeUnitOfWork(Base) as unit:
        yield unit
