"""Who sees and changes what: each role, and the rule that other branches do not exist for you."""

import pytest

from crm_common.testing.system import phone_number, unique


def new_client(api, **extra):
    body = {"kind": "person", "name": unique("Клиент "), "phones": [phone_number()], **extra}
    return api.ok("POST", "/clients", body, status=201)


@pytest.fixture
def clients(world):
    """A client of each manager of the north branch and one of the south branch."""
    north = world.north
    return {
        "mine": new_client(north.managers[0]),
        "colleague": new_client(north.managers[1]),
        "other_branch": new_client(world.south.managers[0]),
    }


def listed_ids(api, path="/clients"):
    return {item["id"] for item in api.pages(path, limit=200)}


def test_a_manager_reads_lists_updates_and_archives_only_their_own_clients(world, clients):
    manager = world.north.managers[0]
    assert manager.get(f"/clients/{clients['mine']['id']}").status_code == 200
    for other in ("colleague", "other_branch"):
        client_id = clients[other]["id"]
        assert manager.get(f"/clients/{client_id}").status_code == 404
        assert manager.patch(f"/clients/{client_id}", json={"name": "Взлом"}).status_code == 404
        assert manager.delete(f"/clients/{client_id}").status_code == 404
        assert manager.post(f"/clients/{client_id}/interactions", json={"type": "note"}).status_code == 404
        assert manager.get(f"/clients/{client_id}/timeline").status_code == 404
    ids = listed_ids(manager)
    assert clients["mine"]["id"] in ids
    assert not ids & {clients["colleague"]["id"], clients["other_branch"]["id"]}
    assert manager.ok("PATCH", f"/clients/{clients['mine']['id']}", {"tags": ["VIP"]})["tags"] == ["vip"]
    assert manager.ok("DELETE", f"/clients/{clients['mine']['id']}")["archived"] is True


def test_a_head_works_with_every_client_of_their_branch_and_no_other(world, clients):
    head = world.north.head
    for own in ("mine", "colleague"):
        client_id = clients[own]["id"]
        assert head.get(f"/clients/{client_id}").status_code == 200
        assert head.ok("PATCH", f"/clients/{client_id}", {"source": "referral"})["source"] == "referral"
    ids = listed_ids(head)
    assert {clients["mine"]["id"], clients["colleague"]["id"]} <= ids
    foreign = clients["other_branch"]["id"]
    assert foreign not in ids
    assert head.get(f"/clients/{foreign}").status_code == 404
    assert head.patch(f"/clients/{foreign}", json={"name": "x"}).status_code == 404
    assert head.delete(f"/clients/{foreign}").status_code == 404
    assert head.ok("DELETE", f"/clients/{clients['colleague']['id']}")["archived"] is True


def test_an_admin_sees_and_changes_clients_of_every_branch(world, clients):
    admin = world.admin
    ids = listed_ids(admin, f"/clients?owner_id={world.south.managers[0].me['id']}")
    assert clients["other_branch"]["id"] in ids
    for client in clients.values():
        assert admin.get(f"/clients/{client['id']}").status_code == 200
    archived = admin.ok("DELETE", f"/clients/{clients['other_branch']['id']}")
    assert archived["archived"] is True
    assert admin.ok("POST", f"/clients/{archived['id']}/restore")["archived"] is False


def test_the_404_for_another_branch_is_the_same_as_for_a_client_that_does_not_exist(world, clients):
    manager = world.north.managers[0]
    hidden = manager.get(f"/clients/{clients['other_branch']['id']}")
    missing = manager.get("/clients/00000000-0000-4000-8000-000000000000")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"


def test_a_manager_cannot_give_a_client_away_but_a_head_can_reassign_within_the_branch(world, clients):
    manager, colleague, head = world.north.managers[0], world.north.managers[1], world.north.head
    client_id = clients["mine"]["id"]
    refused = manager.patch(f"/clients/{client_id}", json={"owner_id": colleague.me["id"]})
    assert refused.status_code == 403
    moved = head.ok("PATCH", f"/clients/{client_id}", {"owner_id": colleague.me["id"]})
    assert moved["owner_id"] == colleague.me["id"]
    assert manager.get(f"/clients/{client_id}").status_code == 404
    assert colleague.get(f"/clients/{client_id}").status_code == 200
    outsider = world.south.managers[0].me["id"]
    invalid = head.patch(f"/clients/{client_id}", json={"owner_id": outsider})
    assert invalid.status_code == 422
    assert "owner_id" in invalid.json()["error"]["fields"]


def test_only_an_admin_moves_a_client_to_another_branch(world, clients):
    head = world.north.head
    client_id = clients["colleague"]["id"]
    assert head.patch(f"/clients/{client_id}", json={"branch_id": world.south.id}).status_code == 403
    moved = world.admin.ok("PATCH", f"/clients/{client_id}", {"branch_id": world.south.id})
    assert moved["branch_id"] == world.south.id and moved["owner_id"] is None
    assert head.get(f"/clients/{client_id}").status_code == 404
    assert world.south.head.get(f"/clients/{client_id}").status_code == 200


def test_roles_decide_who_manages_users_and_branches(world):
    manager, head = world.north.managers[0], world.north.head
    body = {"email": f"{unique('u')}@e2e.test", "name": "Новый", "password": "long-password", "role": "manager"}
    assert manager.post("/users", json=body).status_code == 403
    assert head.post("/users", json={**body, "role": "head"}).status_code == 403
    assert head.post("/users", json={**body, "branch_id": world.south.id}).status_code == 403
    assert manager.post("/branches", json={"name": "X", "code": unique("X")[:10]}).status_code == 403
    assert head.post("/branches", json={"name": "X", "code": unique("X")[:10]}).status_code == 403
    created = head.ok("POST", "/users", body, status=201)
    assert created["branch_id"] == world.north.id and "password" not in created and "password_hash" not in created
    assert world.south.head.get(f"/users/{created['id']}").status_code == 404
    assert {b["id"] for b in manager.pages("/branches")} == {world.north.id}


def test_a_deactivated_user_is_locked_out_at_once_and_cannot_log_in(world, system):
    head = world.north.head
    email = f"{unique('leaving')}@e2e.test"
    user = head.ok("POST", "/users", {"email": email, "name": "Уходящий", "password": "long-password",
                                      "role": "manager"}, status=201)
    leaving = head.__class__(head.base_url).login(email, "long-password")
    client = new_client(leaving)
    head.ok("PATCH", f"/users/{user['id']}", {"active": False})
    after = leaving.get(f"/clients/{client['id']}")
    assert after.status_code == 401 and after.json()["error"]["code"] == "unauthorized"
    login = head.__class__(head.base_url).post("/auth/login", json={"email": email, "password": "long-password"})
    assert login.status_code == 401
    assert head.get(f"/clients/{client['id']}").status_code == 200, "the client stays with the company"


def test_changing_a_password_ends_the_old_sessions(world):
    head = world.north.head
    email = f"{unique('pw')}@e2e.test"
    user = head.ok("POST", "/users", {"email": email, "name": "П", "password": "first-password",
                                      "role": "manager"}, status=201)
    session = head.__class__(head.base_url).login(email, "first-password")
    session.ok("PATCH", f"/users/{user['id']}", {"password": "second-password"})
    assert session.get("/me").status_code == 401
    assert head.__class__(head.base_url).login(email, "second-password").me["id"] == user["id"]
