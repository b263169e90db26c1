"""The upgrade path: a data folder made by the previous release opens with this one.

tests/fixtures/linli-data-4c2e40b/ was made by release 4c2e40b with tests/fixtures/make_previous_release.sh
(the demo community and a few writes through its API); tests/fixtures/linli-data-4c2e40b.json lists what
was made and the row counts. Here this build's `migrate` and `serve` run on copies of it, and the old data
is read back through the API and written to. The fixture itself is never changed.

    LINLI_BIN=$PWD/.build/debug/linli python3 -m pytest -q tests/browser/test_previous_release.py
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_server_process import Node, run  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FOLDER = FIXTURES / "linli-data-4c2e40b"
MADE = json.loads((FIXTURES / "linli-data-4c2e40b.json").read_text())


def copy_of_fixture(tmp_path: Path, name: str = "data") -> Path:
    data = tmp_path / name
    shutil.copytree(FOLDER, data)
    os.chmod(data, 0o700)  # as the release made them; a checkout leaves them 0644
    os.chmod(data / "secret.key", 0o600)
    return data


def rows(data: Path, sql: str, database: str = "linli.sqlite") -> list[tuple]:
    # The fixture is opened immutable: a WAL database opened otherwise gets -wal and -shm files beside it.
    path = data / database
    uri = f"file:{path}?immutable=1" if data == FOLDER else f"file:{path}"
    db = sqlite3.connect(uri, uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def schema(data: Path, database: str) -> set[tuple]:
    return {(kind, name, " ".join((sql or "").split())) for kind, name, sql in
            rows(data, "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'", database)}


class Client:
    """Signed in with a password, as a browser is: the session cookie and its CSRF token."""

    def __init__(self, node: Node, username: str, password: str):
        self.url = node.url + "/api/v1"
        self.http = requests.Session()
        r = self.http.post(self.url + "/session", json={"username": username, "password": password}, timeout=10)
        assert r.status_code == 200, f"{username} cannot sign in with the password set by the old release: {r.status_code} {r.text}"
        self.http.headers["X-CSRF-Token"] = r.json()["csrfToken"]

    def call(self, method: str, path: str, body: dict | None = None, expect: int = 200, **params) -> dict:
        r = self.http.request(method, self.url + path, json=body, params=params or None, timeout=10)
        assert r.status_code == expect, f"{method} {path}: {r.status_code}, expected {expect}: {r.text}"
        return r.json() if r.content else {}


def check_the_old_data(node: Node, data: Path) -> Client:
    """Everything the old release was given is there, reads as it did and answers the API."""
    counts = MADE["counts"]
    ready = requests.get(node.url + "/readyz", timeout=10).json()
    assert ready["status"] == "ready" and int(ready["schema"]) >= MADE["schema"], ready

    manager = Client(node, "manager", MADE["managerPassword"])
    cid = MADE["community"]
    me = manager.call("GET", "/me")
    assert me["username"] == "manager" and any(b["role"] == "community_admin" and b.get("communityId") == cid for b in me["roles"]), me
    # An API token the old release issued (only its hash is stored) still signs in.
    r = requests.get(node.url + "/api/v1/me", headers={"Authorization": "Bearer " + MADE["token"]}, timeout=10)
    assert r.status_code == 200 and r.json()["username"] == "manager", r.text

    community = next(c for c in manager.call("GET", "/communities")["items"] if c["id"] == cid)
    assert community["name"] == "幸福里小区"
    # The row counts the old release left, in the database and through the API.
    assert rows(data, f"SELECT count(*) FROM households WHERE community_id = '{cid}'")[0][0] == counts["households"] == 156
    assert manager.call("GET", f"/communities/{cid}/households", limit=1)["total"] == counts["households"]
    assert manager.call("GET", f"/communities/{cid}/people", limit=1)["total"] == counts["people"]
    buildings = manager.call("GET", f"/communities/{cid}/buildings")["items"]
    assert len(buildings) == counts["buildings"]
    assert {"id": MADE["building"], "name": "旧版楼 Old-release block"}.items() <= next(b for b in buildings if b["id"] == MADE["building"]).items()
    assert manager.call("GET", f"/communities/{cid}/work-orders", limit=1)["total"] == counts["workOrders"]
    assert manager.call("GET", f"/communities/{cid}/notices", limit=1)["total"] == counts["notices"]

    # The identity number was encrypted with the folder's secret.key: found by its keyed hash and revealed whole.
    person = manager.call("GET", f"/people/{MADE['person']}")
    assert person["name"] == "旧版居民 Old Resident" and person["careTags"] == ["elderly_alone"], person
    found = manager.call("GET", f"/communities/{cid}/people", q=MADE["identityNumber"])["items"]
    assert [p["id"] for p in found] == [MADE["person"]]
    revealed = manager.call("POST", f"/people/{MADE['person']}/identity-number/reveal")
    assert revealed["identityNumber"] == MADE["identityNumber"], revealed

    order = manager.call("GET", f"/work-orders/{MADE['workOrder']}")
    assert (order["number"], order["title"], order["status"], order["category"]) == \
        (MADE["workOrderNumber"], "旧版工单 Old-release lift fault", "accepted", "repair"), order
    assert order["buildingId"] == MADE["building"]
    assert any("已受理 accepted by the old release" in (step.get("note") or "") for step in order["steps"]), order["steps"]
    report = manager.call("GET", f"/work-orders/{MADE['report']}")
    assert (report["title"], report["category"], report["status"]) == ("旧版报事 Old-release noise report", "noise", "submitted"), report

    notice = manager.call("GET", f"/notices/{MADE['notice']}")
    assert notice["title"] == "旧版公告 Old-release notice" and notice["options"] == ["能 yes", "不能 no"], notice
    progress = notice["progress"]
    assert (progress["households"], progress["answered"], progress["answers"]) == \
        (counts["noticeReceipts"], 1, {"能 yes": 1}), progress

    product = manager.call("GET", f"/products/{MADE['productKey']}")
    assert product["name"] == "旧版烟感 Old-release smoke detector", product
    device = manager.call("GET", f"/devices/{MADE['productKey']}/{MADE['deviceName']}")
    assert (device["nickname"], device["buildingId"], device["tags"], device["reportIntervalSeconds"]) == \
        ("旧版楼烟感", MADE["building"], ["old-release"], 600), device

    # The resident who reported and answered sees both.
    resident = Client(node, "resident", MADE["residentPassword"])
    assert MADE["report"] in [w["id"] for w in resident.call("GET", "/me/work-orders")["items"]]
    mine = [n for n in resident.call("GET", "/me/notices")["items"] if n["notice"]["id"] == MADE["notice"]]
    assert len(mine) == 1 and mine[0]["answer"] == "能 yes", mine
    return manager


def write_and_read_back(manager: Client) -> dict:
    """New writes beside the old data, and on old rows."""
    cid = MADE["community"]
    building = manager.call("POST", f"/communities/{cid}/buildings", {"name": "新版楼 New-release block", "floors": 3}, expect=201)
    assert manager.call("GET", f"/buildings/{building['id']}")["name"] == "新版楼 New-release block"
    assert len(manager.call("GET", f"/communities/{cid}/buildings")["items"]) == MADE["counts"]["buildings"] + 1
    notice = manager.call("POST", f"/communities/{cid}/notices",
                          {"title": "新版公告 New-release notice", "body": "升级完成。Upgraded.", "audience": {"everyone": True}}, expect=201)
    read_back = manager.call("GET", f"/notices/{notice['id']}")
    # Every household the old release made is either reached or counted as vacant (vacant flats are left out).
    assert read_back["title"] == "新版公告 New-release notice"
    assert read_back["progress"]["households"] + read_back["vacantLeftOut"] == MADE["counts"]["households"], read_back
    assert read_back["progress"]["households"] > 0
    # The old work order goes on from where the old release left it.
    started = manager.call("POST", f"/work-orders/{MADE['workOrder']}/steps", {"step": "grab"})
    assert started["status"] == "assigned", started
    order = manager.call("POST", f"/communities/{cid}/work-orders", {"category": "repair", "title": "新版工单 New-release order"}, expect=201)
    assert order["number"] != MADE["workOrderNumber"] and manager.call("GET", f"/work-orders/{order['id']}")["title"] == "新版工单 New-release order"
    return {"building": building["id"], "notice": notice["id"], "order": order["id"]}


def test_migrate_then_serve_keeps_the_previous_releases_data(tmp_path: Path):
    data = copy_of_fixture(tmp_path)
    old_ledger = rows(data, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert len(old_ledger) == MADE["counts"]["migrations"] and old_ledger[-1][0] == MADE["schema"]

    run("migrate", "--data", str(data))
    ledger = rows(data, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert [v for v, _ in ledger[:len(old_ledger)]] == [v for v, _ in old_ledger], "versions the old release applied were changed"
    assert [v for v, _ in ledger] == sorted({v for v, _ in ledger})
    # Migrating again is a no-op, and the upgraded schema is the one a fresh folder gets from this build.
    run("migrate", "--data", str(data))
    assert rows(data, "SELECT version, name FROM schema_migrations ORDER BY version") == ledger
    fresh = tmp_path / "fresh"
    run("migrate", "--data", str(fresh))
    for database in ("linli.sqlite", "telemetry.sqlite"):
        upgraded, made_new = schema(data, database), schema(fresh, database)
        assert upgraded == made_new, f"{database}: an upgraded folder differs from a new one:\n" \
            f"only upgraded: {sorted(upgraded - made_new)}\nonly new: {sorted(made_new - upgraded)}"

    node = Node(data).start()
    try:
        manager = check_the_old_data(node, data)
        made = write_and_read_back(manager)
    finally:
        assert node.stop() == 0, node.log.read_text()
    # What this build wrote is there after a restart, beside the old rows.
    node = Node(data).start()
    try:
        manager = Client(node, "manager", MADE["managerPassword"])
        assert manager.call("GET", f"/notices/{made['notice']}")["title"] == "新版公告 New-release notice"
        assert manager.call("GET", f"/work-orders/{MADE['workOrder']}")["status"] == "assigned"
        assert manager.call("GET", f"/communities/{MADE['community']}/households", limit=1)["total"] == MADE["counts"]["households"]
    finally:
        assert node.stop() == 0, node.log.read_text()


def test_serve_on_the_previous_releases_folder_migrates_it_at_start(tmp_path: Path):
    data = copy_of_fixture(tmp_path, "unmigrated")
    node = Node(data).start()
    try:
        write_and_read_back(check_the_old_data(node, data))
    finally:
        assert node.stop() == 0, node.log.read_text()
    assert rows(data, "SELECT max(version) FROM schema_migrations")[0][0] >= MADE["schema"]


def test_the_fixture_is_untouched_and_small():
    assert sorted(p.name for p in FOLDER.iterdir()) == ["linli.sqlite", "secret.key", "telemetry.sqlite"]
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 2_000_000
    assert rows(FOLDER, "SELECT max(version) FROM schema_migrations")[0][0] == MADE["schema"], "the fixture was migrated in place"
