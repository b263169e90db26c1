"""Work from an alarm, end to end, in Chromium and over real MQTT: a smoke detector in a flat posts
a smoke event, the rule raises a critical alarm, the header's badge counts it, the alarm names its
flat, dispatch opens a work order from it for the engineer on the roster (who has no account and is
told by SMS), the work order is handled and closed, and alarm and work order link each other.
Also the roster page and the new-work-order form at phone size."""

from __future__ import annotations

import json
import sys
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
from test_rules import api, connect, create_rule, post, alarms, wait_for, first_line  # noqa: E402

STAFF_PASSWORD = "staff-password-1"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("alarm-work") / "data"
    run("demo", "--data", str(data))
    run("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin="operations-password-1\n")
    run("user", "password", "--data", str(data), "--username", "staff", "--password-stdin", stdin=STAFF_PASSWORD + "\n")
    token = first_line(run("token", "create", "--data", str(data), "--username", "ops", "--name", "t"))
    smoke = first_line(run("product", "create", "--data", str(data), "--library", "smoke_detector"))
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    time.sleep(0.5)
    site = {"data": data, "port": port, "node": node, "url": node.url, "token": token, "products": {"smoke_detector": smoke}, "devices": {}, "work": data.parent}
    site["community"] = api(site, "GET", "/communities").json()["items"][0]["id"]
    yield site
    assert site["node"].stop() == 0, site["node"].log.read_text()


@pytest.fixture(scope="module")
def server(site: dict):
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


def test_an_alarm_becomes_a_work_order_that_is_closed_and_linked(site: dict, page):
    # A smoke detector in a flat of building 2, and the rule from the smoke template.
    households = api(site, "GET", f"/communities/{site['community']}/households", params={"limit": 100}).json()["items"]
    flat = next(h for h in households if h["buildingName"] == "2号楼")
    pk = site["products"]["smoke_detector"]
    made = api(site, "POST", f"/communities/{site['community']}/devices", json={
        "productKey": pk, "deviceName": "smoke-2-1203", "nickname": "厨房烟感", "householdId": flat["id"],
        "buildingId": flat["buildingId"], "unitId": flat["unitId"], "location": "厨房"})
    assert made.status_code == 201, made.text
    site["devices"]["smoke-2-1203"] = (pk, "smoke-2-1203", made.json()["deviceSecret"])
    template = next(t for t in api(site, "GET", "/rule-templates").json()["items"] if t["key"] == "smoke")
    for trigger in template["triggers"]:
        trigger["productKey"] = pk
    create_rule(site, {"name": template["name"], "triggers": template["triggers"], "actions": template["actions"]})
    time.sleep(0.3)

    # Staff are in the console when the smoke comes: the badge counts it without a reload.
    log_in(page, site["url"], "staff", STAFF_PASSWORD)
    page.get(f"{site['url']}/console/c/{site['community']}/work-orders")
    assert element(page, "#alarm-badge").get_attribute("hidden") is not None, "no critical alarm yet"
    c, _ = connect(site, "smoke-2-1203")
    try:
        post(c, "smoke-2-1203", site, {"value": {"SmokeConcentration": 812.5}}, topic=f"/sys/{pk}/smoke-2-1203/thing/event/SmokeAlarm/post")
        alarm = wait_for(lambda: alarms(site, status="active", severity="critical"))[0]
    finally:
        c.disconnect()
        c.loop_stop()
    page.refresh()  # the badge polls every 15 s; a page load counts at once
    badge = element(page, "#alarm-badge")
    wait(page).until(lambda d: d.find_element(By.CSS_SELECTOR, "#alarm-badge").get_attribute("data-count") == "1")
    assert "紧急告警 1 条待确认" == badge.text
    badge.click()
    wait(page).until(lambda d: "/alarms" in d.current_url)

    # The alarm names the flat and the device by what people call them.
    page.get(f"{site['url']}/console/alarms/{alarm['id']}")
    place = element(page, "#alarm-place").text
    assert "2号楼" in place and flat["room"] in place and "厨房" in place and "厨房烟感" in place, place
    assert element(page, "#alarm-status").text == "未确认"
    element(page, "#open-work-order").click()
    form = element(page, "#work-order-form")
    assert form.find_element(By.NAME, "title").get_attribute("value") == alarm["message"]
    assert Select(form.find_element(By.NAME, "category")).first_selected_option.get_attribute("value") == "security"
    # The engineer is on the roster; the repair category puts him first among those on duty.
    Select(form.find_element(By.NAME, "category")).select_by_value("repair")
    assignee = Select(form.find_element(By.NAME, "assignee"))
    engineer = next(o for o in assignee.options if o.text.startswith("钱工"))
    assignee.select_by_value(engineer.get_attribute("value"))
    form.find_element(By.ID, "create-work-order").click()
    wait(page).until(lambda d: "/console/work-orders/" in d.current_url)
    order_id = page.current_url.rsplit("/", 1)[1]
    assert element(page, "#order-status").get_attribute("data-status") == "assigned"
    assert "钱工" in page.find_element(By.TAG_NAME, "main").text
    assert f"/console/alarms/{alarm['id']}" in element(page, "#order-alarm a").get_attribute("href")
    assert flat["room"] in element(page, "#order-place").text

    order = api(site, "GET", f"/work-orders/{order_id}").json()
    assert order["assigneeStaffId"] and order["alarmId"] == alarm["id"]
    # He has no account: he is told by SMS, queued with his phone masked.
    texts = wait_for(lambda: [m for m in api(site, "GET", f"/communities/{site['community']}/outbound-messages").json()["items"] if order["number"] in m["subject"]])
    assert texts[0]["channel"] == "sms" and texts[0]["to"].endswith("4444") and "13900004444" not in json.dumps(texts)

    # The work is done and the order closed, from the console's step form.
    for step, note in (("start", ""), ("resolve", "更换烟感电池，误报 battery replaced, false alarm"), ("close", "")):
        form = element(page, "#step-form")
        if note:
            form.find_element(By.NAME, "note").send_keys(note)
        form.find_element(By.CSS_SELECTOR, f"button.step-{step}").click()
        wait(page).until(lambda d, s=step: d.find_element(By.CSS_SELECTOR, "#order-status").get_attribute("data-status") in {"start": "in_progress", "resolve": "resolved", "close": "closed"}[s])
    # The alarm says which work order it has, and where that one stands.
    page.get(f"{site['url']}/console/alarms/{alarm['id']}")
    linked = element(page, "#alarm-work-order").text
    assert order["number"] in linked and "已关闭" in linked
    assert not page.find_elements(By.CSS_SELECTOR, "#open-work-order")
    # Acknowledged, the badge goes.
    element(page, "button.ack").click()
    wait(page).until(lambda d: d.find_element(By.CSS_SELECTOR, "#alarm-badge").get_attribute("hidden") is not None)


def test_the_roster_and_the_form_at_phone_size(site: dict, page):
    log_in(page, site["url"], "staff", STAFF_PASSWORD)
    page.set_window_size(390, 844)
    try:
        page.get(f"{site['url']}/console/c/{site['community']}/roster")
        rows = page.find_elements(By.CSS_SELECTOR, "#roster tr.staff")
        assert {r.find_element(By.TAG_NAME, "strong").text for r in rows} == {"李娜", "赵强", "钱工"}
        assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        engineer = next(r for r in rows if "钱工" in r.text)
        assert "无账号，短信通知" in engineer.text
        engineer.find_element(By.CSS_SELECTOR, "a.edit-roster").click()
        form = element(page, "#roster-form")
        sunday = form.find_element(By.NAME, "day.6")
        if not sunday.is_selected():
            sunday.click()
        page.execute_script("arguments[0].value = '07:30'", form.find_element(By.NAME, "start"))
        form.find_element(By.ID, "save-roster").click()
        wait(page).until(lambda d: d.current_url.endswith("/roster"))
        engineer = next(r for r in page.find_elements(By.CSS_SELECTOR, "#roster tr.staff") if "钱工" in r.text)
        assert "07:30–18:00" in engineer.text and "周日" in engineer.text
        # The new-work-order form fits the phone and says what is wrong beside the field.
        page.get(f"{site['url']}/console/c/{site['community']}/work-orders/new")
        form = element(page, "#work-order-form")
        assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        form.find_element(By.NAME, "title").send_keys("单元门禁坏了")
        form.find_element(By.NAME, "room").send_keys("1203")
        form.find_element(By.ID, "create-work-order").click()
        assert "填写房号时请先选择单元" in element(page, "#room-error").text
        assert element(page, "input[name=title]").get_attribute("value") == "单元门禁坏了"
    finally:
        page.set_window_size(1280, 1024)
