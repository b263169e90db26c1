"""Devices and products made in the console, in a real headless Chromium: a product from the
product library, then a device of it placed in a building, unit and room, whose triple
(ProductKey, DeviceName, DeviceSecret) is shown once and never again; its place then changed from
its page. And a household sheet saved in GBK, as Excel on a Chinese Windows saves it, uploaded
through the import page. The forms are used at a phone's width.

Run after `swift build --product linli`:

    LINLI_BIN=$PWD/.build/debug/linli python3 -m pytest -q tests/browser/test_devices_forms.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests
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
from test_server_process import Node, run  # noqa: E402

CLERK = ("manager", "manager-password-forms")  # the demo's community administrator
GUARD = ("guard", "guard-password-forms")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("forms")
    data = work / "data"
    run("demo", "--data", str(data))
    for username, password in (CLERK, GUARD):
        run("user", "password", "--data", str(data), "--username", username, "--password-stdin", stdin=password + "\n")
    node = Node(data).start()
    yield {"url": node.url, "work": work}
    assert node.stop() == 0, _tail(node.log)


server, driver = site_fixtures("390,844")


def community_id(driver: WebDriver, base: str) -> str:
    driver.get(base + "/console")
    link = element(driver, "a[href^='/console/c/']")
    return link.get_attribute("href").rstrip("/").split("/console/c/")[1].split("/")[0]


def overflow(driver: WebDriver) -> int:
    """How far the page is wider than the screen, in CSS pixels (0 when it fits)."""
    return driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")


def test_a_product_from_the_library_and_a_placed_device_whose_triple_shows_once(site: dict, page: WebDriver):
    base = site["url"]
    log_in(page, base, *CLERK)
    wait(page).until(lambda d: path_of(d).startswith("/console"))
    cid = community_id(page, base)

    # The device list offers both buttons to who manages devices.
    page.get(f"{base}/console/c/{cid}/devices")
    click_and_load(page, element(page, "#new-product"), "#product-form")
    assert overflow(page) <= 0, "the product form fits a phone"
    # Sent with nothing chosen: the field at fault says so, beside it.
    click_and_load(page, element(page, "#product-submit"), "#product-form")
    assert element(page, "#library").get_attribute("aria-describedby") == "library-error"
    assert element(page, "#library-error").text
    Select(element(page, "#library")).select_by_value("smoke_detector")
    click_and_load(page, element(page, "#product-submit"), "h1")
    assert path_of(page).startswith("/console/products/")
    pk = path_of(page).rsplit("/", 1)[1]
    assert element(page, "h1").text == "烟雾报警器"

    # A new device of it, from the product's page, placed in a unit and room of the demo.
    click_and_load(page, element(page, "#new-device-of-product"), "#device-form")
    assert Select(element(page, "#productKey")).first_selected_option.get_attribute("value") == pk
    assert overflow(page) <= 0, "the device form fits a phone"
    unit = Select(element(page, "#unitId"))
    unit_id = unit.options[1].get_attribute("value")
    unit.select_by_value(unit_id)
    element(page, "#deviceName").send_keys("smoke-forms-1")
    element(page, "#nickname").send_keys("厨房烟感")
    element(page, "#room").send_keys("no-such-room")
    click_and_load(page, element(page, "#device-submit"), "#device-form")
    assert element(page, "#room-error").text, "an unknown room is named at its field"
    assert element(page, "#deviceName").get_attribute("value") == "smoke-forms-1", "what was typed is kept"

    # The first household of that unit, from the API, for the room.
    bearer = api_session(base)
    households = bearer.get(f"{base}/api/v1/communities/{cid}/households", params={"unitId": unit_id}, timeout=10).json()["items"]
    room = households[0]["room"]
    field = element(page, "#room")
    field.clear()
    field.send_keys(room)
    click_and_load(page, element(page, "#device-submit"), "#triple")
    assert "只显示这一次" in element(page, "#once-warning").text
    assert element(page, "#triple-product-key").text == pk
    assert element(page, "#triple-device-name").text == "smoke-forms-1"
    secret = element(page, "#triple-device-secret").text
    assert len(secret) >= 16
    assert overflow(page) <= 0, "the triple fits a phone"

    # Never again: the device's page does not hold it, and going back asks the server anew.
    click_and_load(page, element(page, "#to-device"), "#device-place")
    assert secret not in page.page_source
    assert room in element(page, "#device-place-text").text
    device = bearer.get(f"{base}/api/v1/devices/{pk}/smoke-forms-1", timeout=10).json()
    assert device["nickname"] == "厨房烟感" and device.get("householdId") == households[0]["id"]
    assert secret not in str(device)

    # Its place and nickname changed from its page.
    click_and_load(page, element(page, "#edit-device"), "#device-edit-form")
    assert element(page, "#room").get_attribute("value") == room
    # Out of the building into the garage: no building, unit or room, only where it is.
    Select(element(page, "#buildingId")).select_by_value("")
    Select(element(page, "#unitId")).select_by_value("")
    element(page, "#room").clear()
    location = element(page, "#location")
    location.clear()
    location.send_keys("地下车库 B2")
    click_and_load(page, element(page, "#device-save"), "#device-place")
    assert path_of(page) == f"/console/d/{pk}/smoke-forms-1"
    assert element(page, "#device-place-text").text == "地下车库 B2"


def test_who_does_not_manage_devices_sees_no_buttons(site: dict, page: WebDriver):
    base = site["url"]
    log_in(page, base, *GUARD)
    cid = community_id(page, base)
    page.get(f"{base}/console/c/{cid}/devices")
    element(page, "#devices")
    assert not page.find_elements(By.ID, "new-device") and not page.find_elements(By.ID, "new-product")
    page.get(f"{base}/console/c/{cid}/devices/new")
    assert not page.find_elements(By.ID, "device-form")


def test_a_gbk_sheet_goes_in_through_the_import_page(site: dict, page: WebDriver, tmp_path: Path):
    base = site["url"]
    log_in(page, base, *CLERK)
    cid = community_id(page, base)
    page.get(f"{base}/console/c/{cid}/import")
    sheet = tmp_path / "住户.csv"
    sheet.write_bytes("楼栋,单元,房号,姓名,手机,身份\n表格楼,1单元,301,欧阳晓,13900001111,租户\n".encode("gbk"))
    element(page, "#csv-file").send_keys(str(sheet))
    click_and_load(page, element(page, "#import-submit"), "#import-report")
    # Unticked, the unknown building is reported on its line, not made.
    problem = element(page, "tr.problem")
    assert problem.get_attribute("data-line") == "2" and problem.get_attribute("data-field") == "building"
    element(page, "#csv-file").send_keys(str(sheet))
    element(page, "#create-places").click()
    click_and_load(page, element(page, "#import-submit"), "#import-report")
    assert element(page, "#import-summary").get_attribute("data-imported") == "true", element(page, "#import-report").text
    bearer = api_session(base)
    people = bearer.get(f"{base}/api/v1/communities/{cid}/people", params={"q": "欧阳晓"}, timeout=10).json()["items"]
    assert len(people) == 1 and people[0]["residencies"][0]["role"] == "tenant", people


def api_session(base: str) -> requests.Session:
    """A session signed in as the clerk through the login form, for the API's reads."""
    session = requests.Session()
    answer = session.post(f"{base}/login", data={"username": CLERK[0], "password": CLERK[1]}, allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), answer.text[:300]
    return session
