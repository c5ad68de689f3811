"""The bookkeeping tables are declared once: the models a service gets and the tables its first migration
creates are the same."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine
from sqlalchemy.orm import DeclarativeBase

from crm_common.bookkeeping import (
    ALL_TABLES,
    COMMAND_LOG,
    OUTBOX,
    bookkeeping_models,
    create_bookkeeping_tables,
    model_for,
)


def fresh_base():
    class Base(DeclarativeBase):
        pass

    return Base


@pytest.mark.parametrize("tables", [(), (OUTBOX,), (OUTBOX, COMMAND_LOG)])
def test_the_first_migration_creates_exactly_the_tables_the_models_declare(tables):
    base = fresh_base()
    bookkeeping_models(base, *tables)
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        create_bookkeeping_tables(Operations(MigrationContext.configure(connection)), *tables)
        differences = compare_metadata(MigrationContext.configure(connection), base.metadata)

    assert differences == []


def test_a_service_gets_the_three_models_on_its_own_base_in_the_order_asked():
    base = fresh_base()
    outbox, processed, commands = bookkeeping_models(base)

    assert [m.__tablename__ for m in (outbox, processed, commands)] == list(ALL_TABLES)
    assert model_for(base, COMMAND_LOG) is commands
    assert all(issubclass(m, base) for m in (outbox, processed, commands))


def test_a_base_without_a_table_has_no_model_for_it():
    base = fresh_base()
    bookkeeping_models(base, OUTBOX)

    assert model_for(base, COMMAND_LOG) is None
