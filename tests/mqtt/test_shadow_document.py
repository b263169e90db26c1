"""Alibaba's device shadow document against the built binary: Alibaba's own Link Kit SDK keeps its
reported state in it, reads it back and gets the platform's wishes as `control`; a raw paho
device gets Alibaba's error codes for bad requests and cannot touch another device's shadow; and
a change that got its PUBACK survives kill -9."""

from __future__ import annotations

import json
import queue
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

linkkit = pytest.importorskip("linkkit.linkkit")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402
from test_console import driver, page, element, log_in  # noqa: E402,F401  (fixtures used by name)
from selenium.webdriver.common.by import By  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import OPS_PASSWORD, alink_device, create_device, create_product, expect, link_kit, provision  # noqa: E402


def gates(data: Path, names: list[str]) -> dict:
    token = provision(data)
    pk = create_product(data, "barrier_gate")
    secrets = {name: create_device(data, pk, name)[2] for name in names}
    tsl = data.parent / "tsl.json"
    tsl.write_text(run("product", "tsl", "--data", str(data), "--product-key", pk).stdout)
    return {"token": token, "pk": pk, "secrets": secrets, "tsl": str(tsl)}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("shadow")
    data = work / "data"
    made = gates(data, ["gate-sdk", "gate-raw", "gate-other"])
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    yield {**made, "port": port, "url": node.url, "work": work}
    assert node.stop() == 0, node.log.read_text()


@pytest.fixture(scope="module")
def server(site: dict):
    """What the browser fixtures of test_console need: the base URL and a folder for screenshots."""
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


def api(site: dict, path: str, method: str = "GET", **kwargs) -> requests.Response:
    return requests.request(method, site["url"] + path, headers={"Authorization": "Bearer " + site["token"]}, timeout=15, **kwargs)


def device(port: int, pk: str, dn: str, secret: str):
    return alink_device(port, (pk, dn, secret))


def test_link_kit_keeps_its_state_in_the_shadow_and_gets_the_platforms_wishes(site: dict, page):
    pk, dn = site["pk"], "gate-sdk"
    inbox: queue.Queue = queue.Queue()
    lk = link_kit(site["port"], (pk, dn, site["secrets"][dn]), site["tsl"], inbox)
    lk.on_thing_shadow_get = lambda payload, userdata: inbox.put(("shadow", payload))
    lk.on_thing_device_info_update = lambda request_id, code, data, message, userdata: inbox.put(("labels", code))
    lk.connect_async()
    path = f"/api/v1/devices/{pk}/{dn}/shadow/document"
    try:
        assert expect(inbox, "connect", 15)[1] == 0
        # The device reports its settings; Linli answers on /shadow/get with the new version.
        assert lk.thing_update_shadow({"openHours": {"from": "06:00", "to": "23:00"}, "mode": "auto"}, 1)[0] == 0
        answer = expect(inbox, "shadow", 10)[1]
        assert answer["method"] == "reply" and answer["payload"] == {"status": "success", "version": 1}, answer
        # A stale version is refused with Alibaba's 409 and changes nothing.
        assert lk.thing_update_shadow({"mode": "manual"}, 1)[0] == 0
        refused = expect(inbox, "shadow", 10)[1]
        assert refused["payload"]["status"] == "error" and refused["payload"]["content"]["errorcode"] == "409", refused

        # An operator wants the gate on manual: the connected device gets the whole document as control.
        changed = api(site, path, "PATCH", json={"desired": {"mode": "manual"}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["delivered"] is True and changed.json()["version"] == 2
        control = expect(inbox, "shadow", 10)[1]
        assert control["method"] == "control" and control["version"] == 2, control
        assert control["payload"]["state"]["desired"] == {"mode": "manual"}
        assert control["payload"]["state"]["reported"]["mode"] == "auto"
        assert lk.local_get_latest_shadow().get_version() == 2

        # The device does it, reports so and clears what was wanted, as Alibaba's flow goes.
        assert lk.thing_update_shadow({"mode": "manual"}, 3)[0] == 0
        assert expect(inbox, "shadow", 10)[1]["payload"] == {"status": "success", "version": 3}
        lk_clear = {"method": "update", "state": {"desired": "null"}, "version": 4}
        # Link Kit has no call for clearing desired; a device does it with a plain publish.
        assert lk.publish_topic(f"/shadow/update/{pk}/{dn}", json.dumps(lk_clear), 1)[0] == 0
        assert expect(inbox, "shadow", 10)[1]["payload"]["version"] == 4

        # Read back, by the device and through the API.
        assert lk.thing_get_shadow()[0] == 0
        got = expect(inbox, "shadow", 10)[1]
        assert got["method"] == "reply" and got["version"] == 4
        assert got["payload"]["state"] == {"reported": {"openHours": {"from": "06:00", "to": "23:00"}, "mode": "manual"}}
        assert set(got["payload"]["metadata"]["reported"]) == {"openHours", "mode"}
        document = api(site, path).json()
        assert document["version"] == 4 and document["state"] == got["payload"]["state"]

        # And on the device's page in the console, beside the labels the gate states about itself.
        assert lk.thing_update_tags({"vendor": "捷顺", "model": "JSKT"})[0] == 0
        assert expect(inbox, "labels", 10)[1] == 200
        log_in(page, site["url"], "ops", OPS_PASSWORD)
        page.get(f"{site['url']}/console/d/{pk}/{dn}")
        assert element(page, "#shadow-document-version").text.startswith("版本 4 · ")
        assert json.loads(page.find_element(By.ID, "shadow-document").text) == document["state"]
        assert page.find_element(By.CSS_SELECTOR, "#labels .label[data-key='vendor']").text == "vendor 捷顺"
    finally:
        lk.disconnect()
        lk.destruct()


def test_bad_requests_get_alibabas_codes_and_other_devices_shadows_are_closed(site: dict):
    pk, dn = site["pk"], "gate-raw"
    c, inbox = device(site["port"], pk, dn, site["secrets"][dn])
    assert expect(inbox, "connack")[1] == 0
    c.subscribe(f"/shadow/get/{pk}/{dn}", 1)
    assert expect(inbox, "suback")[1] == [1]
    update = f"/shadow/update/{pk}/{dn}"

    def ask(payload: str) -> dict:
        c.publish(update, payload, qos=1)
        return expect(inbox, "message", 10)[2]

    cases = {
        "": "407",
        "{not json": "400",
        json.dumps({"state": {"reported": {"a": 1}}, "version": 1}): "401",
        json.dumps({"method": "replace", "state": {"reported": {"a": 1}}, "version": 1}): "406",
        json.dumps({"method": "update", "version": 1}): "402",
        json.dumps({"method": "update", "state": {"reported": {"a": 1}}}): "403",
        json.dumps({"method": "update", "state": {}, "version": 1}): "404",
        json.dumps({"method": "update", "state": {"reported": {}}, "version": 1}): "405",
        json.dumps({"method": "update", "state": {"reported": {f"a{i}": i for i in range(129)}}, "version": 1}): "408",
    }
    for payload, code in cases.items():
        answer = ask(payload)
        assert answer["payload"]["status"] == "error" and answer["payload"]["content"]["errorcode"] == code, (payload, answer)
    assert api(site, f"/api/v1/devices/{pk}/{dn}/shadow/document").json()["version"] == 0, "nothing refused was kept"

    # A delete takes out what it names; the connection carries on after every refusal.
    assert ask(json.dumps({"method": "update", "state": {"reported": {"a": 1, "b": 2}}, "version": 5}))["payload"]["version"] == 5
    assert ask(json.dumps({"method": "delete", "state": {"reported": {"a": "null"}}, "version": 6}))["payload"]["version"] == 6
    assert ask(json.dumps({"method": "get"}))["payload"]["state"] == {"reported": {"b": 2}}

    # Another device's shadow is not this device's to touch: the broker closes the connection.
    c.publish(f"/shadow/update/{pk}/gate-other", json.dumps({"method": "update", "state": {"reported": {"x": 1}}, "version": 1}), qos=1)
    expect(inbox, "disconnect", 10)
    c.loop_stop()
    assert api(site, f"/api/v1/devices/{pk}/gate-other/shadow/document").json()["version"] == 0


def test_an_acknowledged_shadow_change_survives_kill_9(tmp_path: Path):
    data = tmp_path / "data"
    made = gates(data, ["gate-crash"])
    pk, dn = made["pk"], "gate-crash"
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    c, inbox = device(port, pk, dn, made["secrets"][dn])
    assert expect(inbox, "connack")[1] == 0
    info = c.publish(f"/shadow/update/{pk}/{dn}", json.dumps({"method": "update", "state": {"reported": {"plates": ["浙A12345"]}}, "version": 7}), qos=1)
    info.wait_for_publish(timeout=10)
    assert info.is_published(), "no PUBACK"
    node.stop(signal.SIGKILL)
    c.loop_stop()
    node = Node(data, mqtt_port=free_port()).start()
    try:
        r = requests.get(node.url + f"/api/v1/devices/{pk}/{dn}/shadow/document", headers={"Authorization": "Bearer " + made["token"]}, timeout=15)
        assert r.status_code == 200 and r.json()["version"] == 7 and r.json()["state"]["reported"] == {"plates": ["浙A12345"]}, r.text
    finally:
        assert node.stop() == 0, node.log.read_text()
