"""Alibaba's own Link Kit SDK for Python (aliyun-iot-linkkit on PyPI), pointed at Linli on
127.0.0.1 without TLS: it signs in with the device triple and posts properties and events."""

from __future__ import annotations

import queue
import sys
import time
from pathlib import Path

import pytest

linkkit = pytest.importorskip("linkkit.linkkit")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import expect  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("linkkit")
    data = work / "data"
    run("demo", "--data", str(data))
    product_key = run("product", "create", "--data", str(data), "--library", "smoke_detector").stdout.strip().splitlines()[-1]
    pk, dn, secret = run("device", "create", "--data", str(data), "--product-key", product_key, "--name", "smoke-3-1").stdout.strip().splitlines()[-1].split()
    tsl = work / "tsl.json"
    tsl.write_text(run("product", "tsl", "--data", str(data), "--product-key", pk).stdout)
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    time.sleep(0.5)
    yield {"port": port, "pk": pk, "dn": dn, "secret": secret, "tsl": str(tsl)}
    assert node.stop() == 0, node.log.read_text()


def test_link_kit_sdk_connects_posts_properties_and_events(site: dict):
    inbox: queue.Queue = queue.Queue()
    lk = linkkit.LinkKit(host_name="cn-shanghai", product_key=site["pk"], device_name=site["dn"], device_secret=site["secret"])
    lk.config_mqtt(port=site["port"], secure="", endpoint="127.0.0.1", keep_alive=60)
    lk.thing_setup(site["tsl"])
    lk.on_connect = lambda session_flag, rc, userdata: inbox.put(("connect", rc))
    lk.on_thing_prop_post = lambda request_id, code, data, message, userdata: inbox.put(("prop", code, message))
    lk.on_thing_event_post = lambda event, request_id, code, data, message, userdata: inbox.put(("event", event, code, message))
    lk.connect_async()

    try:
        assert expect(inbox, "connect", 15)[1] == 0
        rc, _ = lk.thing_post_property({"SmokeSensorState": 0, "SmokeConcentration": 12.5, "BatteryPercentage": 90})
        assert rc == 0
        assert expect(inbox, "prop", 15)[1] == 200
        rc, _ = lk.thing_post_property({"BatteryPercentage": 101})
        assert rc == 0
        reply = expect(inbox, "prop", 15)
        assert reply[1] == 6306 and "BatteryPercentage" in reply[2]
        rc, _ = lk.thing_trigger_event(("SmokeAlarm", {"SmokeConcentration": 800.0}))
        assert rc == 0
        event = expect(inbox, "event", 15)
        assert event[1] == "SmokeAlarm" and event[2] == 200
    finally:
        lk.disconnect()
        lk.destruct()
