"""New rows of several tables written at once (crm_common.bulk.insert_objects), as a flush would write them."""

import uuid

import pytest
from sqlalchemy import ForeignKey, Integer, String, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from crm_common.bulk import apply_defaults, insert_objects


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parents"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(50))
    upper: Mapped[str] = mapped_column(String(50), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    tags: Mapped[str] = mapped_column(String(50), server_default="none")


@event.listens_for(Parent, "before_insert")
def _upper(_mapper, _connection, parent):
    parent.upper = parent.name.upper()


class Child(Base):
    __tablename__ = "children"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    parent_id: Mapped[str] = mapped_column(ForeignKey("parents.id"))
    value: Mapped[str] = mapped_column(String(50), unique=True)


@pytest.fixture
def session():
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def _foreign_keys(connection, _record):
        connection.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine)
    with sessionmaker(engine)() as session:
        yield session
    engine.dispose()


def test_rows_of_several_tables_are_written_parents_first_with_their_defaults_and_listeners(session):
    parent = Parent(name="anna")
    apply_defaults(session, parent)  # its id, for the children
    children = [Child(parent_id=parent.id, value=v) for v in ("a", "b")]
    insert_objects(session, [parent, *children, Parent(name="boris")])

    assert (parent.upper, parent.version) == ("ANNA", 1)
    assert session.execute(select(Parent.name, Parent.upper, Parent.version, Parent.tags).order_by(Parent.name)).all() \
        == [("anna", "ANNA", 1, "none"), ("boris", "BORIS", 1, "none")]
    assert sorted(session.scalars(select(Child.value).where(Child.parent_id == parent.id)).all()) == ["a", "b"]
    assert children[0].id is None and parent not in session  # keys the database makes; the objects stay out


def test_a_duplicate_or_a_missing_parent_fails_as_a_flush_would(session):
    parent = Parent(name="anna")
    insert_objects(session, [parent])
    with pytest.raises(IntegrityError):
        insert_objects(session, [Child(parent_id=parent.id, value="a"), Child(parent_id=parent.id, value="a")])
    session.rollback()
    with pytest.raises(IntegrityError):
        insert_objects(session, [Child(parent_id=str(uuid.uuid4()), value="b")])
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Child)) == 0


def test_a_value_given_is_kept_and_nothing_to_write_writes_nothing(session):
    named = Parent(name="anna", version=7)
    apply_defaults(session, named)
    assert (named.upper, named.version) == ("ANNA", 7) and named.id
    insert_objects(session, [])
    assert session.scalar(select(func.count()).select_from(Parent)) == 0
