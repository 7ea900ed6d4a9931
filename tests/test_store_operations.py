"""Every public store operation is one transaction from its first read to its last write (``@operation``)."""

from __future__ import annotations

import contextlib
import inspect
import threading

import pytest

from dcp_emulator.errors import Archived
from dcp_emulator.resources import Resource
from dcp_emulator.store import Store
from dcp_emulator.store.credentials import Credentials
from dcp_emulator.store.management import Management
from dcp_emulator.store.profile_tables import ProfileTables
from dcp_emulator.store.profiles import Profiles
from dcp_emulator.store.uploads import Uploads

WRITES = ("create_", "update_", "delete_", "write_", "record_", "start_", "finish_", "apply_", "revoke_",
          "upsert_", "sync_")


@pytest.mark.parametrize("backend", [Management, Profiles, Uploads, Credentials, ProfileTables])
def test_every_public_backend_method_is_an_operation(backend):
    """The rule is a decorator, not discipline: a new public method without one fails here."""
    for name, method in inspect.getmembers(backend, inspect.isfunction):
        if name.startswith("_") or name == "profiles_view_deferred":  # a context manager holding a transaction
            continue
        kind = getattr(method, "operation", None)
        assert kind is not None, f"{backend.__name__}.{name} is neither @operation nor @read_operation"
        if name.startswith(WRITES):
            assert kind == "write", f"{backend.__name__}.{name} writes but is a read-only operation"


@pytest.fixture
def store():
    s = Store()
    yield s
    s.close()


@pytest.fixture
def world(store):
    account = store.credentials.create_account()["id"]
    service = store.management.create_service(account, {"name": "S"})["id"]
    table = store.management.create_datasource(account, service, {"name": "T", "keyfield_locator_type": "uid"})["id"]
    attribute = store.management.create_attribute(account, table, {"name": "a", "datatype": "long"})["id"]
    return {"account": account, "service": service, "table": table, "attribute": attribute}


# An update reads the row, then writes every field back (unchanged ones from what it read): a DELETE
# (archive) landing between the two used to be silently undone by the rename.
RACES = {
    "service": ("update_service", "delete_service", "get_service", "service"),
    "table": ("update_datasource", "delete_datasource", "get_datasource", "table"),
    "attribute": ("update_attribute", "delete_attribute", "get_attribute", "attribute"),
}


@pytest.mark.parametrize("resource", sorted(RACES))
def test_a_delete_racing_an_edit_is_never_undone(store, world, monkeypatch, resource):
    """Deterministic: the DELETE is started in another thread at the moment the edit has read its row
    (a hook in the field validation between read and write). It must wait for the whole edit, then
    archive; before the operations were single transactions it ran in between and the edit unarchived."""
    update, delete, get, key = RACES[resource]
    backend, account, entity = store.management, world["account"], world[key]
    fields = {"description": "edited"} if resource == "attribute" else {"name": "renamed"}
    deleted = threading.Event()
    real = Resource.parse_update
    fired = []

    def read_then_race(*args, **kwargs):
        if not fired:
            fired.append(True)
            threading.Thread(target=lambda: (getattr(backend, delete)(account, entity), deleted.set())).start()
            assert not deleted.wait(0.3)  # blocked by the edit's transaction
        return real(*args, **kwargs)

    monkeypatch.setattr(Resource, "parse_update", read_then_race)
    edited = getattr(backend, update)(account, entity, fields)
    assert edited["archived"] == 0 and fired
    assert deleted.wait(10)  # then the DELETE ran, last
    after = getattr(backend, get)(account, entity)
    assert after["archived"] == 1, f"the {resource} edit undid a DELETE that came after it"
    assert all(after[k] == v for k, v in fields.items())  # and the edit itself was kept


def test_many_rounds_of_rename_against_delete_end_archived(store, world):
    """Real threads, no hooks: a rename and a DELETE race 50 times. In any serial order the service ends
    archived (rename then DELETE archives; DELETE then rename is refused as archived), so it always must."""
    account, service = world["account"], world["service"]
    mgmt = store.management
    def rename(barrier: threading.Barrier, i: int) -> None:
        barrier.wait()
        with contextlib.suppress(Archived):  # refused: the DELETE came first
            mgmt.update_service(account, service, {"name": f"n{i}"})

    def archive(barrier: threading.Barrier, i: int) -> None:
        barrier.wait()
        mgmt.delete_service(account, service)

    for i in range(50):
        mgmt.update_service(account, service, {"archived": False})
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=fn, args=(barrier, i)) for fn in (rename, archive)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert mgmt.get_service(account, service)["archived"] == 1, f"round {i}: the rename unarchived"
