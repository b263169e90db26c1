"""Rules through a real MQTT connection: a door contact that stays silent raises the absence alarm
and clears it when the door opens; a smoke event raises a critical alarm that waits for a person;
a temperature held high for a while raises one alarm, not one per post; timers survive a restart."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402
from test_console import driver, page, element, log_in, wait  # noqa: E402,F401  (fixtures used by name)
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect, paho  # noqa: E402


def first_line(result) -> str:
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("rules") / "data"
    run("demo", "--data", str(data))
    run("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin="operations-password-1\n")
    token = first_line(run("token", "create", "--data", str(data), "--username", "ops", "--name", "t"))
    products = {lib: first_line(run("product", "create", "--data", str(data), "--library", lib)) for lib in ["door_contact", "smoke_detector", "environment_sensor", "street_light"]}
    devices = {}
    for lib, name in [("door_contact", "door-1"), ("smoke_detector", "smoke-1"), ("smoke_detector", "smoke-2"), ("environment_sensor", "env-1"), ("street_light", "stair-light-1")]:
        pk, dn, secret = first_line(run("device", "create", "--data", str(data), "--product-key", products[lib], "--name", name)).split()
        devices[name] = (pk, dn, secret)
    port = free_port()
    # The webhook receivers listen on 127.0.0.2, allowed; the rest of the loopback network is not.
    node = Node(data, mqtt_port=port, args=["--webhook-allow", "127.0.0.2"]).start()
    time.sleep(0.5)
    site = {"data": data, "port": port, "node": node, "url": node.url, "token": token, "products": products, "devices": devices, "work": data.parent}
    site["community"] = api(site, "GET", "/communities").json()["items"][0]["id"]
    yield site
    assert site["node"].stop() == 0, site["node"].log.read_text()


@pytest.fixture(scope="module")
def server(site: dict):
    """What the browser fixtures of test_console need: the base URL and a folder for screenshots."""
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


def api(site: dict, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, site["url"] + "/api/v1" + path, headers={"Authorization": "Bearer " + site["token"]}, timeout=30, **kwargs)


def connect(site: dict, name: str):
    pk, dn, secret = site["devices"][name]
    ts = int(time.time() * 1000)
    content = f"clientId{dn}deviceName{dn}productKey{pk}timestamp{ts}"
    password = hmac.new(secret.encode(), content.encode(), hashlib.sha256).hexdigest()
    c, inbox = paho(site["port"], f"{dn}|securemode=3,signmethod=hmacsha256,timestamp={ts}|", f"{dn}&{pk}", password, decode=json.loads)
    assert expect(inbox, "connack")[1] == 0
    return c, inbox


def post(c, name: str, site: dict, params: dict, topic: str | None = None) -> None:
    pk, dn, _ = site["devices"][name]
    info = c.publish(topic or f"/sys/{pk}/{dn}/thing/event/property/post", json.dumps({"id": "1", "version": "1.0", "params": params}), qos=1)
    info.wait_for_publish(5)
    assert info.is_published()


def alarms(site: dict, **params) -> list[dict]:
    r = api(site, "GET", f"/communities/{site['community']}/alarms", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def wait_for(check, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail("condition not met in time")


def create_rule(site: dict, body: dict) -> dict:
    r = api(site, "POST", f"/communities/{site['community']}/rules", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def lonely_home(site: dict, which: int = 0) -> tuple[dict, dict, str]:
    """A resident living alone (care tag elderly_alone), their current home as placement fields, and its room."""
    person = api(site, "GET", f"/communities/{site['community']}/people", params={"careTag": "elderly_alone", "current": "true"}).json()["items"][which]
    home = next(r["householdId"] for r in person["residencies"] if r["current"])
    household = api(site, "GET", f"/households/{home}").json()
    return person, {"buildingId": household["buildingId"], "unitId": household["unitId"], "householdId": home}, household["room"]


def register(site: dict, lib: str, name: str, **fields) -> None:
    """Registers a device of a library product through the API, for `connect` to sign in with."""
    pk = site["products"][lib]
    made = api(site, "POST", f"/communities/{site['community']}/devices", json={"productKey": pk, "deviceName": name, **fields})
    assert made.status_code == 201, made.text
    site["devices"][name] = (pk, name, made.json()["deviceSecret"])


def test_a_silent_door_raises_the_absence_alarm_and_opening_it_clears_it(site: dict):
    pk, dn, _ = site["devices"]["door-1"]
    rule = create_rule(site, {
        "name": "独居老人未开门 door not opened",
        "triggers": [{"type": "absence", "productKey": pk, "deviceName": dn, "property": "ContactState", "op": "==", "value": 1, "forSeconds": 3}],
        "actions": [{"type": "alarm", "alarmType": "absence", "severity": "major", "message": "门未打开 door not opened"}],
    })
    c, _ = connect(site, "door-1")
    try:
        # Posts that are not the door opening do not count as activity.
        post(c, "door-1", site, {"ContactState": 0, "BatteryPercentage": 80})
        raised = wait_for(lambda: [a for a in alarms(site, status="active") if a["type"] == "absence"], timeout=15)
        assert raised[0]["severity"] == "major" and raised[0]["ruleId"] == rule["id"] and raised[0]["status"] == "active_unacknowledged"
        assert dn in raised[0]["sourceName"] and "no activity" in raised[0]["detail"]
        events = api(site, "GET", "/events", params={"limit": 500}).json()["items"]
        assert any(e["type"] == "alarm.raised" and e["subjectId"] == raised[0]["id"] for e in events)

        # The door opens: the alarm clears by itself, and the wait starts again.
        post(c, "door-1", site, {"ContactState": 1})
        cleared = wait_for(lambda: [a for a in alarms(site, status="cleared") if a["id"] == raised[0]["id"]])
        assert cleared[0]["status"] == "cleared_unacknowledged" and cleared[0]["clearedBy"].startswith("rule ")
        again = wait_for(lambda: [a for a in alarms(site, status="active") if a["type"] == "absence"], timeout=15)
        assert again[0]["id"] != raised[0]["id"], "a new absence is a new alarm"
    finally:
        c.disconnect()
        c.loop_stop()
    assert api(site, "DELETE", f"/rules/{rule['id']}").status_code == 204


def test_only_doors_of_residents_living_alone_raise_the_care_alarm(site: dict):
    pk = site["products"]["door_contact"]
    # A home where someone lives alone, and a lobby door that is in no home.
    _, place, _ = lonely_home(site)
    home = place["householdId"]
    register(site, "door_contact", "door-care", **place)
    register(site, "door_contact", "door-lobby")
    rule = create_rule(site, {
        "name": "独居老人未开门 care: door not opened",
        "triggers": [{"type": "absence", "productKey": pk, "property": "ContactState", "op": "==", "value": 1, "forSeconds": 2}],
        "conditions": [{"type": "careTag", "tags": ["elderly_alone"]}],
        "actions": [{"type": "alarm", "alarmType": "care-tag-absence", "severity": "major", "message": "独居老人门未开 door not opened"}],
    })
    care, _ = connect(site, "door-care")
    lobby, _ = connect(site, "door-lobby")
    try:
        post(care, "door-care", site, {"ContactState": 1})
        post(lobby, "door-lobby", site, {"ContactState": 1})
        raised = wait_for(lambda: [a for a in alarms(site, status="active") if a["type"] == "care-tag-absence"], timeout=15)
        assert raised[0]["sourceName"].endswith("door-care") and raised[0]["householdId"] == home
        time.sleep(3)
        sources = [a["sourceName"] for a in alarms(site, status="active") if a["type"] == "care-tag-absence"]
        assert len(sources) == 1, f"the lobby door is in no household: {sources}"
        # The door opens: the alarm clears.
        post(care, "door-care", site, {"ContactState": 1})
        wait_for(lambda: [a for a in alarms(site, status="cleared") if a["id"] == raised[0]["id"]])
    finally:
        for c in (care, lobby):
            c.disconnect()
            c.loop_stop()
    assert api(site, "DELETE", f"/rules/{rule['id']}").status_code == 204


def test_a_home_is_silent_only_when_all_its_devices_are(site: dict):
    _, place, room = lonely_home(site, -1)
    home = place["householdId"]
    for lib, name in [("door_contact", "home-door"), ("environment_sensor", "home-air")]:
        register(site, lib, name, **place)
    template = next(t for t in api(site, "GET", "/rule-templates").json()["items"] if t["key"] == "home-silent")
    assert template["triggers"][0]["per"] == "household" and template["conditions"] == [{"type": "careTag", "tags": ["elderly_alone"]}]
    trigger = {**template["triggers"][0], "forSeconds": 3}
    rule = create_rule(site, {"name": template["name"], "triggers": [trigger], "conditions": template["conditions"], "actions": template["actions"][:1]})
    door, _ = connect(site, "home-door")
    air, _ = connect(site, "home-air")
    try:
        post(door, "home-door", site, {"ContactState": 0})
        time.sleep(2)
        post(air, "home-air", site, {"CurrentTemperature": 21.5})  # another sign of life, two seconds later
        time.sleep(2)
        assert not [a for a in alarms(site, status="active") if a["type"] == "home-silent" and a["householdId"] == home], "the air sensor spoke within 3 s"
        raised = wait_for(lambda: [a for a in alarms(site, status="active") if a["type"] == "home-silent" and a["householdId"] == home], timeout=15)
        assert raised[0]["sourceType"] == "household" and raised[0]["sourceId"] == home and room in raised[0]["sourceName"]
        post(air, "home-air", site, {"CurrentTemperature": 21.0})
        wait_for(lambda: [a for a in alarms(site, status="cleared") if a["id"] == raised[0]["id"]])
    finally:
        for c in (door, air):
            c.disconnect()
            c.loop_stop()
    assert api(site, "DELETE", f"/rules/{rule['id']}").status_code == 204


def test_a_person_is_still_only_when_everything_they_wear_is(site: dict):
    lonely, _, _ = lonely_home(site)
    register(site, "environment_sensor", "band-1", personId=lonely["id"])
    rule = create_rule(site, {
        "name": "手环无动静 the bracelet has been still",
        "triggers": [{"type": "absence", "per": "person", "forSeconds": 3}],
        "conditions": [{"type": "careTag", "tags": ["elderly_alone"]}],
        "actions": [{"type": "alarm", "alarmType": "person-still", "severity": "major", "message": "老人无活动 no movement"}],
    })
    band, _ = connect(site, "band-1")
    try:
        post(band, "band-1", site, {"CurrentTemperature": 36.5})
        raised = wait_for(lambda: [a for a in alarms(site, status="active") if a["type"] == "person-still"], timeout=15)
        assert raised[0]["sourceType"] == "person" and raised[0]["sourceId"] == lonely["id"] and raised[0]["sourceName"].startswith(lonely["name"])
        post(band, "band-1", site, {"CurrentTemperature": 36.6})
        wait_for(lambda: [a for a in alarms(site, status="cleared") if a["id"] == raised[0]["id"]])
    finally:
        band.disconnect()
        band.loop_stop()
    assert api(site, "DELETE", f"/rules/{rule['id']}").status_code == 204


def test_a_smoke_event_raises_a_critical_alarm_that_waits_for_a_person(site: dict):
    pk, dn, _ = site["devices"]["smoke-1"]
    template = next(t for t in api(site, "GET", "/rule-templates").json()["items"] if t["key"] == "smoke")
    for trigger in template["triggers"]:
        trigger["productKey"] = pk
    create_rule(site, {"name": template["name"], "triggers": template["triggers"], "actions": template["actions"]})
    time.sleep(0.3)
    c, _ = connect(site, "smoke-1")
    try:
        for _ in range(3):
            post(c, "smoke-1", site, {"value": {"SmokeConcentration": 812.5}}, topic=f"/sys/{pk}/{dn}/thing/event/SmokeAlarm/post")
        alarm = wait_for(lambda: [a for a in alarms(site, status="active", severity="critical") if a["occurrences"] == 3])[0]
        assert alarm["type"] == "smoke"
    finally:
        c.disconnect()
        c.loop_stop()
    # People acknowledge, comment and clear; each only once.
    assert api(site, "POST", f"/alarms/{alarm['id']}/acknowledge").json()["status"] == "active_acknowledged"
    again = api(site, "POST", f"/alarms/{alarm['id']}/acknowledge")
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "status"
    assert api(site, "POST", f"/alarms/{alarm['id']}/comments", json={"text": "物业已到场 staff on site"}).status_code == 201
    assert api(site, "POST", f"/alarms/{alarm['id']}/clear").json()["status"] == "cleared_acknowledged"
    detail = api(site, "GET", f"/alarms/{alarm['id']}").json()
    assert [c["text"] for c in detail["comments"]] == ["物业已到场 staff on site"] and detail["acknowledgedBy"] == "ops"


def test_a_held_temperature_raises_one_alarm_and_timers_survive_a_restart(site: dict):
    pk, dn, _ = site["devices"]["env-1"]
    create_rule(site, {
        "name": "温度持续过高 hot",
        "triggers": [{"type": "property", "productKey": pk, "property": "CurrentTemperature", "op": ">", "value": 60, "forSeconds": 4}],
        "actions": [{"type": "alarm", "alarmType": "hot", "severity": "major"}],
    })
    time.sleep(0.3)
    c, _ = connect(site, "env-1")
    post(c, "env-1", site, {"CurrentTemperature": 75})
    time.sleep(1.5)  # the state is stored within a second of the transition
    c.disconnect()
    c.loop_stop()
    # A restart while the duration runs: the stored state re-arms the timer.
    site["node"].stop()
    site["node"] = Node(site["data"], mqtt_port=site["port"], args=["--webhook-allow", "127.0.0.2"]).start()
    site["url"] = site["node"].url
    hot = wait_for(lambda: [a for a in alarms(site, status="active") if a["type"] == "hot"], timeout=20)
    assert hot[0]["occurrences"] == 1 and "held for 4 s" in hot[0]["detail"]


def test_rules_are_checked_against_the_thing_model(site: dict):
    pk = site["products"]["environment_sensor"]
    r = api(site, "POST", f"/communities/{site['community']}/rules", json={
        "name": "bad",
        "triggers": [{"type": "property", "productKey": pk, "property": "NoSuch", "op": ">", "value": 1},
                     {"type": "event", "productKey": "a1Unknown", "event": "X"},
                     {"type": "property", "productKey": pk, "property": "CurrentTemperature", "op": "~", "value": 1}],
        "actions": [{"type": "alarm", "alarmType": "x", "severity": "major"}],
    })
    assert r.status_code == 422, r.text
    r = api(site, "POST", f"/communities/{site['community']}/rules", json={
        "name": "bad",
        "triggers": [{"type": "property", "productKey": pk, "property": "NoSuch", "op": ">", "value": 1},
                     {"type": "event", "productKey": "a1Unknown", "event": "X"}],
        "actions": [{"type": "alarm", "alarmType": "x"}],
    })
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"triggers[0].property", "triggers[1].productKey", "actions[0].severity"}, fields


def test_the_alarm_board_shows_alarms_live_and_handles_them(site: dict, page):
    pk, dn, _ = site["devices"]["smoke-1"]
    create_rule(site, {"name": "烟雾 smoke board", "triggers": [{"type": "event", "productKey": pk, "event": "Fault"}],
                       "actions": [{"type": "alarm", "alarmType": "fault", "severity": "minor", "message": "设备故障 device fault"}]})
    log_in(page, site["url"], "ops", "operations-password-1")
    wait(page).until(lambda d: "/login" not in d.current_url)
    page.get(f"{site['url']}/console/c/{site['community']}/alarms")
    element(page, "#alarms")
    before = len(page.find_elements(By.CSS_SELECTOR, "#alarm-rows tr"))
    time.sleep(0.5)  # the page's event stream is open
    c, _ = connect(site, "smoke-1")
    try:
        post(c, "smoke-1", site, {"value": {"FaultCode": 2}}, topic=f"/sys/{pk}/{dn}/thing/event/Fault/post")
        # The live refresh may replace the rows under our feet: read and click afresh each time.
        stable = WebDriverWait(page, 20, ignored_exceptions=[StaleElementReferenceException])
        # The row appears without reloading the page.
        stable.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#alarm-rows tr.severity-minor")) == 1)
        assert len(page.find_elements(By.CSS_SELECTOR, "#alarm-rows tr")) == before + 1
        # The alarm's words, and its device (by what people call it, linked to its page).
        assert stable.until(lambda d: "设备故障" in d.find_element(By.CSS_SELECTOR, "#alarm-rows tr.severity-minor").text)
        assert stable.until(lambda d: any(dn in (a.get_attribute("href") or "") for a in d.find_elements(By.CSS_SELECTOR, "#alarm-rows tr.severity-minor a")))
        # Acknowledge, then clear, from the board.
        stable.until(lambda d: d.find_element(By.CSS_SELECTOR, "#alarm-rows tr.severity-minor button.ack").click() or True)
        stable.until(lambda d: d.find_element(By.CSS_SELECTOR, "#alarm-rows tr.severity-minor").get_attribute("data-status") == "active_acknowledged")
        stable.until(lambda d: d.find_element(By.CSS_SELECTOR, "#alarm-rows tr.severity-minor button.clear").click() or True)
        stable.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#alarm-rows tr.severity-minor")) == 0)
        # Its own page: comment on it.
        alarm = [a for a in alarms(site, status="cleared") if a["type"] == "fault"][0]
        page.get(f"{site['url']}/console/alarms/{alarm['id']}")
        assert element(page, "#alarm-status").get_attribute("data-status") == "cleared_acknowledged"
        assert element(page, "#alarm-status").text == "已恢复"
        element(page, "#comment-form textarea").send_keys("电池已更换 battery replaced")
        page.find_element(By.CSS_SELECTOR, "#comment-form button").click()
        stable.until(lambda d: "电池已更换" in d.find_element(By.CSS_SELECTOR, "#comments").text)
    finally:
        c.disconnect()
        c.loop_stop()


class Receiver(http.server.BaseHTTPRequestHandler):
    """A system that takes webhooks: refuses the first, takes the rest, remembers what it got."""
    got: list = []
    answers: list = []

    def do_POST(self):  # noqa: N802 (the standard library's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((dict(self.headers), body))
        status = Receiver.answers.pop(0) if Receiver.answers else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_smoke_turns_on_the_stairwell_light_and_calls_a_signed_webhook(site: dict):
    spk, sdn, _ = site["devices"]["smoke-2"]
    lpk, ldn, _ = site["devices"]["stair-light-1"]
    receiver = http.server.HTTPServer(("127.0.0.2", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    Receiver.got, Receiver.answers = [], [500]
    secret = "a-shared-secret-of-some-length"
    url = f"http://127.0.0.2:{receiver.server_port}/linli"
    rule = create_rule(site, {
        "name": "烟感联动楼道灯 smoke lights the stairwell",
        "triggers": [{"type": "event", "productKey": spk, "deviceName": sdn, "event": "SmokeAlarm"}],
        "actions": [{"type": "workOrder", "category": "security", "message": "烟感报警请现场核查 check the smoke alarm on site"},
                    {"type": "device", "productKey": lpk, "deviceName": ldn, "properties": {"LightSwitch": 1, "Brightness": 100}},
                    {"type": "webhook", "url": url, "secret": secret},
                    {"type": "alarm", "alarmType": "smoke-stair", "severity": "critical"}],
    })
    assert rule["actions"][2]["secret"] == "********" and "secretCipher" not in rule["actions"][2]
    # A device action is checked against the target's thing model.
    bad = api(site, "POST", f"/communities/{site['community']}/rules", json={
        "name": "bad", "triggers": [{"type": "event", "productKey": spk, "event": "SmokeAlarm"}],
        "actions": [{"type": "device", "productKey": lpk, "deviceName": ldn, "properties": {"Power": 5}},
                    {"type": "webhook", "url": "ftp://example.org/x", "secret": "short"}]})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"actions[0].properties.Power", "actions[1].url", "actions[1].secret"}
    time.sleep(0.3)

    light, light_inbox = connect(site, "stair-light-1")
    light.subscribe(f"/sys/{lpk}/{ldn}/thing/service/property/set", 1)
    expect(light_inbox, "suback")
    smoke, _ = connect(site, "smoke-2")
    try:
        post(smoke, "smoke-2", site, {"value": {"SmokeConcentration": 650}}, topic=f"/sys/{spk}/{sdn}/thing/event/SmokeAlarm/post")
        command = expect(light_inbox, "message", 10)
        assert command[1].endswith("/thing/service/property/set") and command[2]["params"] == {"LightSwitch": 1, "Brightness": 100}
        light.publish(command[1] + "_reply", json.dumps({"id": command[2]["id"], "code": 200, "data": {}}), qos=1)
        shadow = wait_for(lambda: [v for v in api(site, "GET", f"/devices/{lpk}/{ldn}/shadow").json()["items"] if v["identifier"] == "LightSwitch" and v.get("deliveredAt")])
        assert shadow[0]["desired"] == "1"

        # The webhook: refused once, taken on the retry, signed with the secret.
        wait_for(lambda: len(Receiver.got) >= 2, timeout=15)
        headers, body = Receiver.got[-1]
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Linli-Signature"] == expected
        payload = json.loads(body)
        assert payload["rule"]["id"] == rule["id"] and payload["change"] == "fired" and payload["device"]["deviceName"] == sdn
        assert Receiver.got[0][1] == body and Receiver.got[0][0]["X-Linli-Delivery"] == headers["X-Linli-Delivery"], "a retry sends the same delivery"
        deliveries = wait_for(lambda: [d for d in api(site, "GET", f"/rules/{rule['id']}/deliveries").json()["items"] if d["status"] == "delivered"])
        assert deliveries[0]["attempts"] == 2 and "reason" not in deliveries[0]
        # The owner is told how it went, never the receiver's status code (no scanning through rules).
        assert "lastStatus" not in deliveries[0] and "lastError" not in deliveries[0]

        # The smoke opened one work order, linked to its alarm; a second smoke event counts on the alarm, not a new order.
        alarm = wait_for(lambda: [a for a in alarms(site, status="active") if a["type"] == "smoke-stair"])[0]
        orders = api(site, "GET", f"/communities/{site['community']}/work-orders", params={"category": "security"}).json()["items"]
        opened = [o for o in orders if o["alarmId"] == alarm["id"]]
        assert len(opened) == 1 and opened[0]["source"] == "alarm" and opened[0]["status"] == "submitted"
        assert api(site, "GET", f"/alarms/{alarm['id']}").json()["workOrderId"] == opened[0]["id"]
        post(smoke, "smoke-2", site, {"value": {"SmokeConcentration": 700}}, topic=f"/sys/{spk}/{sdn}/thing/event/SmokeAlarm/post")
        wait_for(lambda: api(site, "GET", f"/alarms/{alarm['id']}").json()["occurrences"] == 2)
        orders = api(site, "GET", f"/communities/{site['community']}/work-orders", params={"category": "security"}).json()["items"]
        assert len([o for o in orders if o["alarmId"] == alarm["id"]]) == 1
    finally:
        for c in (smoke, light):
            c.disconnect()
            c.loop_stop()
        receiver.shutdown()


def token_for(site: dict, username: str) -> dict:
    token = first_line(run("token", "create", "--data", str(site["data"]), "--username", username, "--name", "inbox"))
    return {"Authorization": "Bearer " + token}


def inbox(site: dict, headers: dict) -> dict:
    r = requests.get(site["url"] + "/api/v1/me/notifications", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_silent_door_tells_the_grid_worker_and_an_unacknowledged_alarm_escalates_and_repeats(site: dict):
    pk, dn, _ = site["devices"]["door-1"]
    # The door is in a building of the grid worker's grid.
    grid = api(site, "GET", f"/communities/{site['community']}/grids").json()["items"][0]
    assert api(site, "PATCH", f"/devices/{pk}/{dn}", json={"buildingId": grid["buildings"][0]["id"]}).status_code == 200
    grid_worker, staff, manager = token_for(site, "grid"), token_for(site, "staff"), token_for(site, "manager")
    before = {who: inbox(site, h)["total"] for who, h in [("grid", grid_worker), ("staff", staff), ("manager", manager)]}
    rule = create_rule(site, {
        "name": "独居老人关怀 care: door not opened",
        "triggers": [{"type": "absence", "productKey": pk, "deviceName": dn, "property": "ContactState", "op": "==", "value": 1, "forSeconds": 2}],
        "actions": [
            {"type": "alarm", "alarmType": "care-absence", "severity": "major", "message": "独居老人门未开 door not opened",
             "escalate": {"tiers": [{"afterSeconds": 2, "to": {"roles": ["property_staff"]}}, {"afterSeconds": 4, "to": {"accounts": ["manager"]}}],
                          "repeatSeconds": 2}},
            {"type": "notify", "to": {"gridWorker": True}, "message": "请上门查看 please visit"},
        ],
    })
    c, _ = connect(site, "door-1")
    try:
        post(c, "door-1", site, {"ContactState": 1})  # opened once; then silence
        # The grid worker of the door's grid is told.
        told = wait_for(lambda: [n for n in inbox(site, grid_worker)["items"] if n["title"] == "请上门查看 please visit"], timeout=15)
        assert dn in told[0]["body"] and told[0]["link"] == f"/console/d/{pk}/{dn}"
        alarm = wait_for(lambda: [a for a in alarms(site, status="active") if a["type"] == "care-absence"])[0]
        # Nobody acknowledges: staff are told, then the manager, then the manager again.
        wait_for(lambda: inbox(site, staff)["total"] > before["staff"], timeout=15)
        wait_for(lambda: inbox(site, manager)["total"] >= before["manager"] + 2, timeout=20)
        escalated = [n for n in inbox(site, manager)["items"] if n.get("subjectId") == alarm["id"]]
        assert escalated[0]["severity"] == "major" and escalated[0]["link"] == f"/console/alarms/{alarm['id']}"
        # Someone acknowledges: it stops.
        assert api(site, "POST", f"/alarms/{alarm['id']}/acknowledge").status_code == 200
        time.sleep(0.5)
        count = inbox(site, manager)["total"]
        time.sleep(3)
        assert inbox(site, manager)["total"] == count, "no more escalation once acknowledged"
        # Each person reads their own inbox only.
        mine = inbox(site, manager)
        assert mine["unread"] >= 2
        first = mine["items"][0]["id"]
        assert requests.post(site["url"] + f"/api/v1/me/notifications/{first}/read", headers=staff, timeout=10).status_code == 404
        assert requests.post(site["url"] + f"/api/v1/me/notifications/{first}/read", headers=manager, timeout=10).status_code == 204
        assert inbox(site, manager)["unread"] == mine["unread"] - 1
        # Read again: no error, and still read once.
        assert requests.post(site["url"] + f"/api/v1/me/notifications/{first}/read", headers=manager, timeout=10).status_code == 204
        assert inbox(site, manager)["unread"] == mine["unread"] - 1
        events = api(site, "GET", "/events", params={"limit": 500}).json()["items"]
        assert sum(1 for e in events if e["type"] == "alarm.escalated" and e["subjectId"] == alarm["id"]) >= 3
        assert any(e["type"] == "notification.sent" and e["subjectId"] == rule["id"] for e in events)
    finally:
        c.disconnect()
        c.loop_stop()
    assert api(site, "DELETE", f"/rules/{rule['id']}").status_code == 204


def replaced(element):
    """A wait condition: `element`'s page has been replaced. Chromedriver answers a look at a node of
    a document already left with "Node with given id does not belong to the document" (a plain
    WebDriverException) as often as with the stale-element error `EC.staleness_of` expects."""
    def check(_driver) -> bool:
        try:
            element.is_enabled()
            return False
        except (StaleElementReferenceException, WebDriverException):
            return True
    return check


def test_rules_console_templates_editor_and_trial(site: dict, page):
    pk = site["products"]["environment_sensor"]
    log_in(page, site["url"], "ops", "operations-password-1")
    wait(page).until(lambda d: "/login" not in d.current_url)
    page.get(f"{site['url']}/console/c/{site['community']}/rules")
    # Start from a template that fits the environment sensor product.
    pick = element(page, "#from-template select[name=pick]")
    value = next(o.get_attribute("value") for o in pick.find_elements(By.TAG_NAME, "option") if o.get_attribute("value") == f"hot|{pk}")
    page.execute_script("arguments[0].value = arguments[1]", pick, value)
    page.find_element(By.CSS_SELECTOR, "#from-template button").click()
    editor = element(page, "#definition")
    draft = json.loads(editor.get_attribute("value"))
    assert draft["triggers"][0]["productKey"] == pk and draft["triggers"][0]["forSeconds"] == 120
    # A fault is shown with its field, and the text is kept.
    draft["triggers"][0]["property"] = "NoSuchProperty"
    page.execute_script("arguments[0].value = arguments[1]", editor, json.dumps(draft))
    # The JSON is under "Advanced", below the form.
    page.execute_script("document.getElementById('rule-advanced').open = true")
    page.find_element(By.CSS_SELECTOR, "#rule-json-form button").click()
    wait(page).until(replaced(editor))
    assert "triggers[0].property" in element(page, "#rule-problems").text
    draft["triggers"][0]["property"] = "CurrentTemperature"
    draft["name"] = "机房过热 server room hot"
    definition = element(page, "#definition")
    page.execute_script("arguments[0].value = arguments[1]", definition, json.dumps(draft))
    page.find_element(By.CSS_SELECTOR, "#rule-json-form button").click()
    # The form's own address is under /console/rules/ too: wait for the saved rule's page to
    # replace it, or the next lookups may land in the page being left.
    wait(page).until(replaced(definition))
    wait(page).until(lambda d: "/console/rules/" in d.current_url and d.current_url.rsplit("/", 1)[1] != "new")
    element(page, "#trial-form")
    rule_id = page.current_url.rsplit("/", 1)[1]
    assert api(site, "GET", f"/rules/{rule_id}").json()["name"] == "机房过热 server room hot"

    # Try it: a hot sample, then two minutes: it would fire and raise the alarm.
    samples = [{"productKey": pk, "deviceName": "env-1", "properties": {"CurrentTemperature": 75}}]
    area = element(page, "#trial-form textarea[name=samples]")
    # Both fields in one step, looked up by the page itself: a lookup from here and a keystroke
    # later once met a node the page had replaced meanwhile.
    page.execute_script(
        "document.querySelector('#trial-form textarea[name=samples]').value = arguments[0];"
        "document.querySelector('#trial-form input[name=thenSeconds]').value = '120';", json.dumps(samples))
    page.find_element(By.CSS_SELECTOR, "#trial-form button").click()
    wait(page).until(replaced(area))
    trial = element(page, "#trial").text
    assert "等待 2 分钟 后" in trial and "触发" in trial and "告警 high-temperature（重要）" in trial

    # Disable from the page; the API agrees.
    button = element(page, "#disable-rule")
    button.click()
    wait(page).until(replaced(button))
    assert element(page, "#rule-enabled").text == "已停用"
    assert api(site, "GET", f"/rules/{rule_id}").json()["enabled"] is False


def test_a_rule_is_tried_through_the_api_without_side_effects(site: dict):
    spk, sdn, _ = site["devices"]["smoke-1"]
    before = len(alarms(site))
    r = api(site, "POST", f"/communities/{site['community']}/rules/test", json={
        "rule": {"name": "trial", "triggers": [{"type": "event", "productKey": spk, "event": "SmokeAlarm"},
                                               {"type": "status", "productKey": spk, "status": "offline", "forSeconds": 60}],
                 "actions": [{"type": "alarm", "alarmType": "trial", "severity": "critical"}, {"type": "webhook", "url": "https://example.org/hook"}]},
        "samples": [{"productKey": spk, "deviceName": sdn, "event": "SmokeAlarm"}, {"productKey": spk, "deviceName": sdn, "status": "offline"}],
        "thenSeconds": 61,
    })
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    assert [(s.get("sample"), s["triggerIndex"], s["change"]) for s in steps] == [(0, 0, "fired"), (None, 1, "fired")]
    assert steps[0]["actions"] == ["raise alarm trial (critical)", "POST to https://example.org/hook"]
    assert len(alarms(site)) == before, "a trial raises nothing"
    bad = api(site, "POST", f"/communities/{site['community']}/rules/test", json={
        "rule": {"name": "t", "triggers": [{"type": "event", "productKey": spk, "event": "SmokeAlarm"}], "actions": [{"type": "alarm", "alarmType": "x", "severity": "minor"}]},
        "samples": [{"productKey": spk, "deviceName": sdn, "event": "SmokeAlarm", "status": "online"}]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "samples[0]"


def test_a_domain_event_starts_a_rule(site: dict):
    """Rules follow the event log: a work order reported for security tells the guards at once."""
    guard = token_for(site, "guard")
    before = inbox(site, guard)["total"]
    rule = create_rule(site, {"name": "新工单通知门岗 tell the guards", "triggers": [{"type": "domain", "eventType": "workorder.submitted"}],
                              "actions": [{"type": "notify", "to": {"roles": ["guard"]}, "message": "有新工单 a new work order"}]})
    r = api(site, "POST", f"/communities/{site['community']}/work-orders", json={"category": "security", "title": "陌生人尾随 tailgating"})
    assert r.status_code == 201, r.text
    told = wait_for(lambda: [n for n in inbox(site, guard)["items"] if n["title"] == "有新工单 a new work order"], timeout=10)
    assert inbox(site, guard)["total"] == before + 1 and r.json()["id"][:8] in told[0]["body"]
    assert api(site, "DELETE", f"/rules/{rule['id']}").status_code == 204


class Redirector(http.server.BaseHTTPRequestHandler):
    """An allowed receiver that sends the webhook on somewhere else."""
    target = ""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(307)
        self.send_header("Location", Redirector.target)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhooks_cannot_reach_the_servers_own_network(site: dict):
    """Server-side request forgery: a rule's webhook may not call the cloud's metadata service,
    Linli's own API or anything else on the server's networks, by address, by a name that resolves
    there, or by a redirect from a receiver that is allowed."""
    spk, sdn, _ = site["devices"]["smoke-1"]
    trigger = [{"type": "event", "productKey": spk, "deviceName": sdn, "event": "SmokeAlarm"}]
    for target in ["http://169.254.169.254/latest/meta-data/", f"http://127.0.0.1:{site['node'].port}/api/v1/me",
                   "http://[::1]:22/", "http://localhost:8080/", "http://[::ffff:127.0.0.1]/", "http://0x7f000001/",
                   "http://10.0.0.1/", "http://192.168.1.1/"]:
        refused = api(site, "POST", f"/communities/{site['community']}/rules", json={
            "name": "ssrf", "triggers": trigger, "actions": [{"type": "webhook", "url": target, "secret": "s" * 20}]})
        assert refused.status_code == 422, (target, refused.text)
        assert [e["field"] for e in refused.json()["errors"]] == ["actions[0].url"], refused.text
        assert "webhook-allow" in refused.json()["errors"][0]["reason"], refused.text

    inside = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    redirector = http.server.HTTPServer(("127.0.0.2", 0), Redirector)
    for server in (inside, redirector):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.got, Receiver.answers = [], []
    Redirector.target = f"http://127.0.0.1:{inside.server_port}/api/v1/me"
    rule = create_rule(site, {"name": "转发 redirected", "triggers": trigger, "actions": [
        {"type": "webhook", "url": f"http://127.0.0.2:{redirector.server_port}/hook", "secret": "s" * 20}]})
    smoke, _ = connect(site, "smoke-1")
    try:
        post(smoke, "smoke-1", site, {"value": {"SmokeConcentration": 640}}, topic=f"/sys/{spk}/{sdn}/thing/event/SmokeAlarm/post")
        refused = wait_for(lambda: [d for d in api(site, "GET", f"/rules/{rule['id']}/deliveries").json()["items"]
                                    if d["status"] == "refused"], timeout=15)
        assert refused[0]["attempts"] == 1, refused  # refused once, not tried again
        assert "loopback" in refused[0]["reason"], refused
        assert Receiver.got == [], "the redirect reached the server's own network"

        # A rule disabled while its delivery waits for a retry takes the delivery with it.
        Receiver.answers = [500] * 20
        failing = http.server.HTTPServer(("127.0.0.2", 0), Receiver)
        threading.Thread(target=failing.serve_forever, daemon=True).start()
        definition = {"name": "失败 failing", "triggers": trigger, "actions": [
            {"type": "webhook", "url": f"http://127.0.0.2:{failing.server_port}/hook", "secret": "s" * 20}]}
        second = create_rule(site, definition)
        post(smoke, "smoke-1", site, {"value": {"SmokeConcentration": 650}}, topic=f"/sys/{spk}/{sdn}/thing/event/SmokeAlarm/post")
        waiting = wait_for(lambda: [d for d in api(site, "GET", f"/rules/{second['id']}/deliveries").json()["items"]
                                    if d["status"] == "pending" and d["attempts"] >= 1], timeout=15)
        assert "500" not in waiting[0]["reason"], waiting
        assert api(site, "PUT", f"/rules/{second['id']}", json={**definition, "enabled": False}).status_code == 200
        cancelled = api(site, "GET", f"/rules/{second['id']}/deliveries").json()["items"]
        assert [d["status"] for d in cancelled] == ["cancelled"], cancelled
        hits = len(Receiver.got)
        time.sleep(6)  # past the next retry (5 s after the second attempt at most)
        assert len(Receiver.got) == hits, "a cancelled delivery was sent"
        failing.shutdown()
        api(site, "DELETE", f"/rules/{second['id']}")
    finally:
        smoke.disconnect()
        smoke.loop_stop()
        for server in (inside, redirector):
            server.shutdown()
        api(site, "DELETE", f"/rules/{rule['id']}")
