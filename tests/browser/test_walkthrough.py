"""The README's "first ten minutes", walked in a real headless Chromium with the demo community: a
property manager signs in, looks over the community, adds a household, opens a work order for a
repair and sends it to the maintenance engineer on the roster, publishes a notice with a question,
and a resident follows it on a phone. Each step is checked, and its screenshot is written to
docs/walkthrough/, which the README shows: the pictures are of what the server really serves.

Run after `swift build --product linli`:

    LINLI_BIN=$PWD/.build/debug/linli python3 -m pytest -q tests/browser/test_walkthrough.py
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from types import SimpleNamespace

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
from test_server_process import Node, run  # noqa: E402

MANAGER = ("manager", "manager-password-walk")  # the demo's community administrator
RESIDENT = ("resident", "resident-password-walk")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "walkthrough"
DESKTOP = (1280, 860)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("walkthrough")
    data = work / "data"
    run("demo", "--data", str(data))
    for username, password in (MANAGER, RESIDENT):
        run("user", "password", "--data", str(data), "--username", username, "--password-stdin", stdin=password + "\n")
    node = Node(data).start()
    yield {"url": node.url, "work": work}
    assert node.stop() == 0, _tail(node.log)


server, driver = site_fixtures(f"{DESKTOP[0]},{DESKTOP[1]}")


def shoot(driver: WebDriver, name: str) -> None:
    """The page as it is now, for the README; written over the last run's."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SHOTS / f"{name}.png")), name


def type_into(driver: WebDriver, css: str, text: str) -> None:
    field = element(driver, css)
    field.clear()
    field.send_keys(text)


def test_first_ten_minutes_of_a_property_manager(server: SimpleNamespace, page: WebDriver):
    base = server.base_url
    rng = random.Random()
    page.set_window_size(*DESKTOP)

    # 1. Signing in: in Chinese, with English one click away.
    page.get(base + "/login")
    assert element(page, "html").get_attribute("lang") == "zh-CN"
    shoot(page, "01-sign-in")
    log_in(page, base, *MANAGER)
    wait(page).until(lambda d: "/login" not in d.current_url)

    # 2. The community at a glance.
    page.get(base + "/console")
    link = element(page, "a[href^='/console/c/']")
    community = link.get_attribute("href").rstrip("/").split("/console/c/")[1].split("/")[0]
    page.get(f"{base}/console/c/{community}")
    assert "幸福里" in element(page, "h1").text
    shoot(page, "02-overview")

    # 3. A household added from the list: its unit chosen, its area in square metres.
    click_and_load(page, element(page, "#nav-households"), "#households")
    click_and_load(page, element(page, "a#new-household"), "#edit-form")
    Select(element(page, "#edit-form select[name=unitId]")).select_by_index(1)
    room = str(rng.randrange(3000, 9999))
    type_into(page, "#edit-form input[name=room]", room)
    type_into(page, "#edit-form input[name=floor]", room[:2])
    type_into(page, "#edit-form input[name=area]", "89.5")
    Select(element(page, "#edit-form select[name=occupancy]")).select_by_visible_text("自住")
    shoot(page, "03-new-household")
    click_and_load(page, element(page, "#edit-form button[type=submit]"), "#household-facts")
    assert room in element(page, "h1").text and "89.5 ㎡" in element(page, "#household-facts").text

    # 4. A repair reported by phone becomes a work order, sent to the engineer on the roster.
    click_and_load(page, element(page, "#nav-work-orders"), "a#new-work-order")
    click_and_load(page, element(page, "a#new-work-order"), "#work-order-form")
    Select(element(page, "#work-order-form select[name=category]")).select_by_value("repair")
    type_into(page, "#work-order-form input[name=title]", "厨房水管漏水")
    type_into(page, "#work-order-form textarea[name=description]", "住户来电：厨房水槽下方水管滴水。")
    Select(element(page, "#work-order-form select[name=unitId]")).select_by_index(1)
    type_into(page, "#work-order-form input[name=room]", "101")
    type_into(page, "#work-order-form input[name=reporterName]", "王女士")
    type_into(page, "#work-order-form input[name=reporterPhone]", "13900001234")
    assignee = Select(element(page, "#work-order-form select[name=assignee]"))
    engineer = [o for o in assignee.options if "钱工" in o.text]
    assert engineer, [o.text for o in assignee.options]
    assignee.select_by_visible_text(engineer[0].text)
    shoot(page, "04-new-work-order")
    element(page, "#create-work-order").click()
    wait(page).until(lambda d: path_of(d).startswith("/console/work-orders/"))
    body = element(page, "main").text
    assert "厨房水管漏水" in body and "钱工" in body, body
    shoot(page, "05-work-order")

    # 5. A notice with one question to every household; the answers come in on its page.
    click_and_load(page, element(page, "#nav-notices"), "#notice-form")
    form = element(page, "#notice-form")
    form.find_element(By.NAME, "title").send_keys("12月8日停水通知")
    form.find_element(By.NAME, "body").send_keys("因管道检修，12月8日 9:00–15:00 停水，请提前储水。")
    form.find_element(By.NAME, "question").send_keys("家中是否有需要送水的老人？")
    form.find_element(By.NAME, "options").send_keys("有 / 没有")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(page).until(lambda d: "/console/notices/" in d.current_url)
    assert "12月8日停水通知" in element(page, "h1").text
    shoot(page, "06-notice")

    # 6. A resident on a phone: the portal's big buttons, and the notice to answer.
    page.delete_all_cookies()
    page.set_window_size(*PHONE)
    log_in(page, base, *RESIDENT)
    wait(page).until(lambda d: path_of(d).startswith("/app"))
    page.get(base + "/app")
    element(page, "nav a[href='/app/reports']")
    shoot(page, "07-portal")
    page.get(base + "/app/notices")
    notice = [a for a in page.find_elements(By.CSS_SELECTOR, "a[href^='/app/notices/']") if "停水" in a.text]
    assert notice, element(page, "main").text
    click_and_load(page, notice[0], "h1")
    assert "家中是否有需要送水的老人" in element(page, "main").text
    shoot(page, "08-portal-notice")
    page.set_window_size(*DESKTOP)
