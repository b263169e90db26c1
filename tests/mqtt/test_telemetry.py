"""Device posts over a real MQTT connection (paho-mqtt as the device) end up in Linli's history,
shadow and diagnosis, survive kill -9 once acknowledged, and show in the console in a real browser;
desired values wait for an offline device and reach it when it signs in."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import sqlite3
import struct
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402
from test_console import driver, page, element, log_in, wait  # noqa: E402,F401  (fixtures used by name)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect, paho  # noqa: E402

PASSWORD = "operations-password-1"


def provision(data: Path, names: list[str]) -> dict:
    run("demo", "--data", str(data))
    run("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin=PASSWORD + "\n")
    token = run("token", "create", "--data", str(data), "--username", "ops", "--name", "t").stdout.strip().splitlines()[-1]
    pk = run("product", "create", "--data", str(data), "--library", "environment_sensor").stdout.strip().splitlines()[-1]
    secrets = {}
    for name in names:
        _, dn, secret = run("device", "create", "--data", str(data), "--product-key", pk, "--name", name).stdout.strip().splitlines()[-1].split()
        secrets[dn] = secret
    return {"token": token, "pk": pk, "secrets": secrets}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("telemetry")
    data = work / "data"
    made = provision(data, ["env-live", "env-away"])
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    yield {**made, "port": port, "url": node.url, "work": work, "node": node}
    assert node.stop() == 0, node.log.read_text()


@pytest.fixture(scope="module")
def server(site: dict):
    """What the browser fixtures of test_console need: the base URL and a folder for screenshots."""
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


def device(port: int, pk: str, dn: str, secret: str, clean: bool = True):
    ts = int(time.time() * 1000)
    content = f"clientId{dn}deviceName{dn}productKey{pk}timestamp{ts}"
    password = hmac.new(secret.encode(), content.encode(), hashlib.sha256).hexdigest()
    return paho(port, f"{dn}|securemode=3,signmethod=hmacsha256,timestamp={ts}|", f"{dn}&{pk}", password, clean=clean, decode=json.loads)


def api(site: dict, path: str, method: str = "GET", **kwargs) -> requests.Response:
    return requests.request(method, site["url"] + path, headers={"Authorization": "Bearer " + site["token"]}, timeout=15, **kwargs)


def post_topic(pk: str, dn: str) -> str:
    return f"/sys/{pk}/{dn}/thing/event/property/post"


def answer_sets(client, inbox_copy: list) -> None:
    """Makes the paho device answer every property set with success, as firmware would."""
    def on_message(c, userdata, msg):
        body = json.loads(msg.payload)
        inbox_copy.append((msg.topic, body))
        if msg.topic.endswith("/thing/service/property/set"):
            c.publish(msg.topic + "_reply", json.dumps({"id": body["id"], "code": 200, "data": {}}), qos=0)
    client.on_message = on_message


def test_posts_are_stored_and_shown_in_the_console(site: dict, page):
    pk, dn = site["pk"], "env-live"
    c, inbox = device(site["port"], pk, dn, site["secrets"][dn])
    assert expect(inbox, "connack")[1] == 0
    for i in range(20):
        info = c.publish(post_topic(pk, dn), json.dumps({"id": str(i), "version": "1.0", "params": {"CurrentTemperature": 20 + i, "PM25": 30}}), qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
    refused = c.publish(post_topic(pk, dn), json.dumps({"id": "x", "params": {"CurrentTemperature": 999}}), qos=1)
    refused.wait_for_publish(5)

    detail = api(site, f"/api/v1/devices/{pk}/{dn}").json()
    assert detail["status"] == "online" and detail["connected"] is True
    assert detail["diagnosis"]["messages"] == 21 and detail["diagnosis"]["errors"] == 1
    assert "CurrentTemperature" in detail["diagnosis"]["lastError"]
    shadow = {s["identifier"]: s for s in detail["shadow"]}
    assert shadow["CurrentTemperature"]["reported"] == "39" and shadow["CurrentTemperature"]["reportedVersion"] == 20
    points = api(site, f"/api/v1/devices/{pk}/{dn}/telemetry?property=CurrentTemperature").json()["points"]
    assert [p["value"] for p in points] == [float(20 + i) for i in range(20)]

    # The console: the device list shows it online, its page the shadow and the chart.
    received: list = []
    answer_sets(c, received)
    c.subscribe(f"/sys/{pk}/{dn}/thing/service/property/set", 1)
    time.sleep(0.3)
    log_in(page, site["url"], "ops", PASSWORD)
    cid = api(site, "/api/v1/communities").json()["items"][0]["id"]
    page.get(f"{site['url']}/console/c/{cid}/devices")
    row = element(page, f"tr[data-dn='{dn}']")
    # The status shows its label in the page's language; its class keeps the code.
    assert "status-online" in row.find_element(By.CSS_SELECTOR, ".status").get_attribute("class").split()
    row.find_element(By.LINK_TEXT, dn).click()
    wait(page).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart svg polyline.line"))
    reported = page.find_element(By.CSS_SELECTOR, "#shadow tr[data-property='CurrentTemperature'] .reported").text
    assert reported.startswith("39")
    assert "CurrentTemperature" in page.find_element(By.ID, "last-error").text

    # A command from the form the thing model makes reaches the device, and its reply is shown:
    # a number field with the property's range, only the chosen command's fields shown.
    form = element(page, "#command-form")
    Select(form.find_element(By.NAME, "service")).select_by_value("property.set")
    interval = form.find_element(By.NAME, "in.property.set.ReportInterval")
    assert interval.get_attribute("type") == "number" and interval.is_displayed()
    assert not form.find_element(By.NAME, "params").is_displayed(), "the JSON is kept under advanced"
    interval.send_keys("120")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    result = wait(page).until(lambda d: d.find_elements(By.ID, "command-result") or d.find_elements(By.ID, "command-error"))[0]
    assert result.get_attribute("id") == "command-result", result.text
    assert '"code":200' in result.text
    assert any(body.get("params") == {"ReportInterval": 120} for _, body in received)
    c.loop_stop()
    c.disconnect()


def test_desired_values_wait_for_the_device_and_reach_it_on_sign_in(site: dict):
    pk, dn = site["pk"], "env-away"
    answer = api(site, f"/api/v1/devices/{pk}/{dn}/shadow/desired", "PUT", json={"values": {"ReportInterval": 300}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["delivered"] is False
    assert api(site, f"/api/v1/devices/{pk}/{dn}/shadow/desired", "PUT", json={"values": {"CurrentTemperature": 1}}).status_code == 422

    # The device signs in, subscribes, and is sent what was asked of it while away.
    received: list = []
    c, inbox = device(site["port"], pk, dn, site["secrets"][dn], clean=False)
    answer_sets(c, received)
    assert expect(inbox, "connack")[1] == 0
    c.subscribe(f"/sys/{pk}/{dn}/thing/service/property/set", 1)
    deadline = time.monotonic() + 20
    delivered = None
    while time.monotonic() < deadline:
        items = api(site, f"/api/v1/devices/{pk}/{dn}/shadow").json()["items"]
        delivered = next((s for s in items if s["identifier"] == "ReportInterval" and s.get("deliveredAt")), None)
        if delivered:
            break
        time.sleep(0.3)
    assert delivered, f"desired value not delivered; the device received {received}"
    assert any(body.get("params") == {"ReportInterval": 300} for _, body in received)
    c.loop_stop()
    c.disconnect()


def test_a_device_asks_for_its_desired_values_and_clears_them(site: dict):
    pk, dn = site["pk"], "env-away"
    assert api(site, f"/api/v1/devices/{pk}/{dn}/shadow/desired", "PUT", json={"values": {"ReportInterval": 600}}).status_code == 200
    received: list = []
    c, inbox = device(site["port"], pk, dn, site["secrets"][dn])
    answer_sets(c, received)
    assert expect(inbox, "connack")[1] == 0
    base = f"/sys/{pk}/{dn}/thing/property/desired"
    c.subscribe([(base + "/get_reply", 1), (base + "/delete_reply", 1)])
    time.sleep(0.5)

    def ask(kind: str, request_id: str, params) -> dict:
        c.publish(f"{base}/{kind}", json.dumps({"id": request_id, "version": "1.0", "params": params}), qos=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for topic, body in list(received):
                if topic == f"{base}/{kind}_reply" and body.get("id") == request_id:
                    return body
            time.sleep(0.05)
        pytest.fail(f"no {kind}_reply for {request_id}; received {received}")

    got = ask("get", "g1", ["ReportInterval"])
    assert got["code"] == 200 and got["data"]["ReportInterval"]["value"] == 600
    version = got["data"]["ReportInterval"]["version"]
    assert ask("get", "g2", [])["data"].keys() >= {"ReportInterval"}, "no names: every desired value"
    # A stale version clears nothing; the current one clears it.
    assert ask("delete", "d1", {"ReportInterval": {"version": version - 1}})["code"] == 200
    assert "ReportInterval" in ask("get", "g3", [])["data"]
    assert ask("delete", "d2", {"ReportInterval": {"version": version}})["code"] == 200
    assert ask("get", "g4", [])["data"] == {}
    shadow = api(site, f"/api/v1/devices/{pk}/{dn}/shadow").json()["items"]
    assert not [s for s in shadow if s["identifier"] == "ReportInterval" and s.get("desired")]
    c.loop_stop()
    c.disconnect()


def history_values(blob: bytes, with_series: bool):
    """(series, ts, number, text) of each value in a history blob: [series int64,] ts int64,
    kind uint8 (1: a float64 follows, 2: a uint32-long UTF-8 text follows), little-endian."""
    at = 0
    while at < len(blob):
        series = None
        if with_series:
            (series,) = struct.unpack_from("<q", blob, at)
            at += 8
        ts, kind = struct.unpack_from("<qB", blob, at)
        at += 9
        number = text = None
        if kind & 1:
            (number,) = struct.unpack_from("<d", blob, at)
            at += 8
        if kind & 2:
            (length,) = struct.unpack_from("<I", blob, at)
            text = blob[at + 4:at + 4 + length].decode()
            at += 4 + length
        yield series, ts, number, text


def test_acknowledged_posts_survive_kill_9(tmp_path: Path):
    data = tmp_path / "data"
    made = provision(data, ["env-crash"])
    pk, dn = made["pk"], "env-crash"
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    c, inbox = device(port, pk, dn, made["secrets"][dn])
    assert expect(inbox, "connack")[1] == 0
    c.max_inflight_messages_set(50)
    c.max_queued_messages_set(0)

    # Each post carries its own measurement time; PUBACKs are recorded by message id.
    acked: set[int] = set()
    lock = threading.Lock()
    c.on_publish = lambda client, userdata, mid: (lock.acquire(), acked.add(mid), lock.release())
    base = int(time.time() * 1000) - 3_600_000
    times: dict[int, int] = {}
    for i in range(3000):
        ts = base + i
        body = {"id": str(i), "version": "1.0", "params": {"CurrentTemperature": {"value": 20.5, "time": ts}}}
        info = c.publish(post_topic(pk, dn), json.dumps(body), qos=1)
        times[info.mid] = ts
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 600:
                break
        time.sleep(0.005)
    node.stop(signal.SIGKILL)
    c.loop_stop()
    with lock:
        confirmed = {times[mid] for mid in acked}
    assert len(confirmed) >= 600, f"only {len(confirmed)} acknowledgements before the kill"

    # Every acknowledged measurement is in the telemetry file, read after the crash: in the log of
    # group commits or, once merged, in blocks per series (both binary, see TelemetryHistory.swift).
    db = sqlite3.connect(data / "telemetry.sqlite")
    series = {row[0] for row in db.execute("SELECT id FROM telemetry_series WHERE identifier = 'CurrentTemperature'")}
    stored = [v[1] for (blob,) in db.execute("SELECT data FROM telemetry_log") for v in history_values(blob, with_series=True) if v[0] in series]
    stored += [v[1] for (s, blob) in db.execute("SELECT series, data FROM telemetry_blocks") if s in series for v in history_values(blob, with_series=False)]
    assert len(stored) == len(set(stored)), "a value was stored twice"
    stored = set(stored)
    db.close()
    missing = confirmed - stored
    assert not missing, f"{len(missing)} of {len(confirmed)} acknowledged posts were lost"

    # And the server comes back over the same files and serves the history.
    node = Node(data, mqtt_port=free_port()).start()
    points = requests.get(f"{node.url}/api/v1/devices/{pk}/{dn}/telemetry?property=CurrentTemperature&from={base}&to={base + 3000}&limit=10000",
                          headers={"Authorization": "Bearer " + made["token"]}, timeout=15).json()["points"]
    assert {p["t"] for p in points} >= confirmed
    # The shadow agrees with history: under load it is written once a second, and what a crash
    # kept from it is put back from history before devices may connect again.
    shadow = requests.get(f"{node.url}/api/v1/devices/{pk}/{dn}/shadow", headers={"Authorization": "Bearer " + made["token"]}, timeout=15).json()["items"]
    temperature = next(s for s in shadow if s["identifier"] == "CurrentTemperature")
    assert temperature["reported"] == "20.5"
    assert temperature["reportedAt"] == max(stored) and temperature["reportedVersion"] == len(stored)
    # The device was online when the server was killed; nobody is connected after the restart,
    # so the registry says offline, with the event that says why.
    headers = {"Authorization": "Bearer " + made["token"]}
    assert requests.get(f"{node.url}/api/v1/devices/{pk}/{dn}", headers=headers, timeout=15).json()["status"] == "offline"
    events = requests.get(f"{node.url}/api/v1/events?limit=500", headers=headers, timeout=15).json()["items"]
    assert any(e["type"] == "device.offline" and "the server restarted" in str(e.get("payload")) for e in events), events[-3:]
    assert node.stop() == 0
