"""The rule form in a real headless Chromium, and the rule it makes firing over real MQTT: the
community administrator builds "temperature above 50" from the form (device, property and
comparison chosen from the product's thing model, an alarm and a work order), is told beside the
field what is missing, tries the rule with the sample the page offers (from a real device) and
sees it would fire; then the sensor reports 75 °C over MQTT and the alarm, with its work order,
is on the alarms page.

Run after `swift build --product linli`:

    LINLI_BIN=$PWD/.build/debug/linli python3 -m pytest -q tests/browser/test_rule_form.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_console import (  # noqa: E402
    _tail,
    site_fixtures,
    click_and_load,
    element,
    log_in,
    page,  # noqa: F401  (a fixture, used by name: screenshots on failure)
    path_of,
    wait,
)
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mqtt"))
from test_rules import alarms, api, connect, first_line, post, wait_for  # noqa: E402

CLERK = ("manager", "manager-password-rules")  # the demo's community administrator


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("rule-form")
    data = work / "data"
    run("demo", "--data", str(data))
    run("user", "password", "--data", str(data), "--username", CLERK[0], "--password-stdin", stdin=CLERK[1] + "\n")
    run("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin="operations-password-1\n")
    token = first_line(run("token", "create", "--data", str(data), "--username", "ops", "--name", "t"))
    pk = first_line(run("product", "create", "--data", str(data), "--library", "environment_sensor"))
    _, dn, secret = first_line(run("device", "create", "--data", str(data), "--product-key", pk, "--name", "env-form-1")).split()
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    time.sleep(0.5)
    site = {"data": data, "port": port, "node": node, "url": node.url, "token": token, "work": work,
            "products": {"environment_sensor": pk}, "devices": {dn: (pk, dn, secret)}}
    site["community"] = api(site, "GET", "/communities").json()["items"][0]["id"]
    yield site
    assert node.stop() == 0, _tail(node.log)


server, driver = site_fixtures("390,844")


def overflow(driver: WebDriver) -> int:
    """How far the page is wider than the screen, in CSS pixels (0 when it fits)."""
    return driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")


def test_a_rule_built_with_the_form_is_tried_and_fires_over_mqtt(site: dict, page: WebDriver):
    base, cid = site["url"], site["community"]
    pk = site["products"]["environment_sensor"]
    log_in(page, base, *CLERK)
    wait(page).until(lambda d: path_of(d).startswith("/console"))
    page.get(f"{base}/console/c/{cid}/rules")
    click_and_load(page, element(page, "#blank-rule"), "#rule-form")
    assert "workOrder" in element(page, "#help-workOrder").get_attribute("textContent")
    assert overflow(page) <= 0, "the rule form fits a phone"

    # The device from the community's list; the property from its product's thing model.
    Select(element(page, "#in-source")).select_by_value(f"{pk}/env-form-1")
    Select(element(page, "#in-kind")).select_by_value("property")
    properties = Select(element(page, "#in-property"))
    offered = [o.get_attribute("value") for o in properties.options if o.is_enabled()]
    assert "CurrentTemperature" in offered and "LightSwitch" not in offered, offered
    assert not element(page, "#in-event").is_displayed(), "an event is not asked for a property report"
    properties.select_by_value("CurrentTemperature")
    Select(element(page, "#in-op")).select_by_value(">")
    element(page, "#in-value").send_keys("50")
    assert element(page, "#in-alarm").is_selected(), "a new rule starts with an alarm"
    assert not element(page, "#in-workOrderTitle").is_displayed(), "an action not ticked shows no fields"
    assert not element(page, "#in-escalateMinutes").is_displayed()
    element(page, "#in-alarmType").send_keys("overheat")
    Select(element(page, "#in-severity")).select_by_value("critical")
    element(page, "#in-alarmMessage").send_keys("机房温度过高")
    # And a work order for the room's place, linked to the alarm.
    element(page, "#in-workOrder").click()
    assert element(page, "#in-workOrderTitle").is_displayed(), "ticked, the work order's fields show"
    Select(element(page, "#in-category")).select_by_value("repair")
    element(page, "#in-workOrderTitle").send_keys("机房降温检查")

    # Sent without a name: refused, said beside the name, what was chosen kept.
    click_and_load(page, element(page, "#rule-save"), "#rule-form")
    assert element(page, "#error-name").text
    assert element(page, "#in-name").get_attribute("aria-describedby") == "error-name"
    assert not page.find_elements(By.ID, "error-property")
    assert Select(element(page, "#in-property")).first_selected_option.get_attribute("value") == "CurrentTemperature"
    assert element(page, "#in-value").get_attribute("value") == "50"
    element(page, "#in-name").send_keys("机房过热")
    click_and_load(page, element(page, "#rule-save"), "#trial-form")
    rule_id = path_of(page).rsplit("/", 1)[1]
    rule = api(site, "GET", f"/rules/{rule_id}").json()
    assert rule["triggers"] == [{"type": "property", "productKey": pk, "deviceName": "env-form-1",
                                 "property": "CurrentTemperature", "op": ">", "value": 50}], rule
    assert rule["actions"] == [
        {"type": "alarm", "alarmType": "overheat", "severity": "critical", "message": "机房温度过高"},
        {"type": "workOrder", "category": "repair", "message": "机房降温检查"},
    ], rule["actions"]

    # Tried with the sample the page offers, from the real device: it would fire.
    assert "env-form-1" in element(page, "#samples").get_attribute("value")
    click_and_load(page, element(page, "#trial-run"), "#trial")
    assert overflow(page) <= 0, "the rule's page and its trial fit a phone"
    trial = element(page, "#trial").text
    assert "触发" in trial and "告警 overheat（紧急）" in trial and "建工单：报修，机房降温检查" in trial, trial
    assert not page.find_elements(By.ID, "trial-problems")
    assert alarms(site, type="overheat") == [], "a trial raises nothing"

    # The sensor reports 75 °C over MQTT: the alarm is raised and shown on the alarms page.
    c, _ = connect(site, "env-form-1")
    try:
        post(c, "env-form-1", site, {"CurrentTemperature": 75})
        alarm = wait_for(lambda: alarms(site, type="overheat", status="active"))[0]
    finally:
        c.disconnect()
        c.loop_stop()
    assert alarm["severity"] == "critical" and alarm["ruleId"] == rule_id, alarm
    # The work order is opened beside it, once, and linked to it.
    alarm = wait_for(lambda: [a for a in alarms(site, type="overheat") if a.get("workOrderId")])[0]
    order = api(site, "GET", f"/work-orders/{alarm['workOrderId']}").json()
    assert order["title"] == "机房降温检查" and order["category"] == "repair", order
    page.get(f"{base}/console/c/{cid}/alarms")
    row = element(page, f"#alarm-{alarm['id']}")
    assert "机房温度过高" in row.text and "紧急" in row.text and "已建工单" in row.text, row.text
