"""A salesperson's name and address are unsealed once per session (routing a batch of
leads mails the same people many times), but never served stale: not after a rollback
undid a change, nor after their sealed payload changed some other way. Both databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from leadvault.db import vault_of
from leadvault.sealed import seal
from scoring import routing, sales_team
from scoring.models import Salesperson
from tests import factories

uow = factories.uow
ANNA = routing.Contact("anna@sales.example", "Anna")


@pytest.fixture
def unseals(monkeypatch) -> list[str]:
    """The owners of the payloads routing unseals, in order."""
    seen: list[str] = []
    real = routing.unseal

    def counting(vault, field, sealed):
        seen.append(sealed.owner)
        return real(vault, field, sealed)

    monkeypatch.setattr(routing, "unseal", counting)
    return seen


def test_each_person_is_unsealed_once_per_session(app, unseals):
    anna = factories.salesperson(app, ANNA.email, ANNA.name)
    ben = factories.salesperson(app, "ben@sales.example", "Ben")
    with uow(app) as s:
        for _ in range(5):
            for person_id in (anna, ben):
                routing.contact(s, s.get(Salesperson, person_id))
        assert [routing.contact(s, p).email for p in routing.people(s)] == [
            ANNA.email,
            "ben@sales.example",
        ]
    assert len(unseals) == 2


def test_a_change_rolled_back_to_a_savepoint_is_not_served(app):
    anna = factories.salesperson(app, ANNA.email, ANNA.name)
    with uow(app) as s:
        person = s.get(Salesperson, anna)
        assert routing.contact(s, person) == ANNA
        savepoint = s.begin_nested()
        sales_team.update_person(s, anna, actor="user:7", ip=None, name="Anna Berg")
        assert routing.contact(s, person).name == "Anna Berg"
        savepoint.rollback()
        assert routing.contact(s, person) == ANNA


def test_a_change_rolled_back_is_not_served_in_the_sessions_next_transaction(app, unseals):
    anna = factories.salesperson(app, ANNA.email, ANNA.name)
    with uow(app) as s:
        routing.contact(s, s.get(Salesperson, anna))
        sales_team.update_person(
            s, anna, actor="user:7", ip=None, name="Anna Berg", email="anna.berg@sales.example"
        )
        assert routing.contact(s, s.get(Salesperson, anna)).name == "Anna Berg"
        s.rollback()
        assert routing.contact(s, s.get(Salesperson, anna)) == ANNA
        assert routing.contact(s, s.get(Salesperson, anna)) == ANNA  # cached again
    assert len(unseals) == 2  # before the change, after the rollback; the change cached itself


def test_a_payload_changed_elsewhere_is_unsealed_anew(app):
    anna = factories.salesperson(app, ANNA.email, ANNA.name)
    with uow(app) as s:
        person = s.get(Salesperson, anna)
        assert routing.contact(s, person) == ANNA
        # As another session (or a bulk statement) would: new sealed contact, same id.
        sealed = seal(vault_of(s), "salesperson", {"email": ANNA.email, "name": "Anna Berg"})
        s.execute(
            sa.update(Salesperson)
            .where(Salesperson.id == anna)
            .values(
                payload=sealed.payload,
                payload_owner=sealed.owner,
                payload_key=sealed.key,
                payload_key_version=sealed.key_version,
            )
            .execution_options(synchronize_session=False)
        )
        s.expire(person)
        assert routing.contact(s, person) == routing.Contact(ANNA.email, "Anna Berg")
