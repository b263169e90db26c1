"""Everyday editing of the data core in the console, in a real headless Chromium, at a desktop's
size and at a phone's (360 px wide): a clerk adds a household from the households list, corrects
what the server refuses (the reason shown beside the field, what was typed kept), adds a resident
to it, then moves the resident out, and sees each change on the pages.

Run after `swift build --product linli`:

    LINLI_BIN=$PWD/.build/debug/linli python3 -m pytest -q tests/browser/test_editing.py
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_console import (  # noqa: E402
    Server,
    click_and_load,
    driver,  # noqa: F401  (a fixture, used by name)
    element,
    identity_number,
    log_in_as_admin,
    open_demo_community,
    open_nav,
    page,  # noqa: F401  (a fixture, used by name: screenshots on failure)
    path_of,
    server,  # noqa: F401  (a fixture, used by name)
)

SIZES = {"desktop": (1280, 1024), "phone": (360, 740)}


def fits_the_screen(driver: WebDriver) -> bool:
    """Nothing wider than the window: no sideways scrolling on a phone."""
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def type_into(driver: WebDriver, name: str, text: str) -> None:
    box = element(driver, f"#edit-form [name={name}]")
    box.clear()
    box.send_keys(text)


def set_date(driver: WebDriver, name: str, day: str) -> None:
    # A date input's typing order follows the browser's locale; its value does not.
    driver.execute_script("arguments[0].value = arguments[1]", element(driver, f"#edit-form [name={name}]"), day)


def submit(driver: WebDriver, expect_css: str) -> None:
    click_and_load(driver, element(driver, "#form-submit"), expect_css)


@pytest.mark.parametrize("size", SIZES.keys())
def test_add_household_and_resident_then_move_out(server: Server, page: WebDriver, size: str):
    page.set_window_size(*SIZES[size])
    rng = random.Random()
    room = f"{rng.randrange(3000, 9999)}"
    name = "测试" + "".join(rng.choice("甲乙丙丁戊己庚辛") for _ in range(3))
    log_in_as_admin(page, server.base_url)
    open_demo_community(page, server.base_url)
    open_nav(page, "nav-households", "#households")

    # The households list leads to the form; the occupancy is offered by its labels.
    click_and_load(page, element(page, "a#new-household"), "#edit-form")
    assert fits_the_screen(page), f"the household form is wider than {SIZES[size][0]} px"
    occupancy = Select(element(page, "#edit-form select[name=occupancy]"))
    assert [o.text for o in occupancy.options] == ["自住", "出租", "空置"]
    unit = Select(element(page, "#edit-form select[name=unitId]"))
    unit.select_by_index(1)
    type_into(page, "room", room)
    type_into(page, "floor", "12")
    type_into(page, "area", "很大")
    occupancy.select_by_visible_text("出租")
    submit(page, "#edit-form")
    error = element(page, "#error-area")
    assert "平方米" in error.text
    area = element(page, "#in-area")
    assert area.get_attribute("aria-describedby") == "error-area"
    assert element(page, "#in-room").get_property("value") == room, "what was typed is kept"
    assert Select(element(page, "#edit-form select[name=occupancy]")).first_selected_option.text == "出租"
    type_into(page, "area", "88.5㎡")
    submit(page, "#household-facts")
    facts = element(page, "#household-facts").text
    assert "88.5 ㎡" in facts and "出租" in facts, facts
    assert room in element(page, "h1").text
    household = path_of(page)

    # A resident, new to the community, with an identity number shown masked.
    click_and_load(page, element(page, "a#new-resident"), "#edit-form")
    assert fits_the_screen(page), f"the resident form is wider than {SIZES[size][0]} px"
    number = identity_number(f"11010519900101{rng.randrange(100, 999)}")
    type_into(page, "name", name)
    type_into(page, "phone", "13912340000")
    type_into(page, "identityNumber", number)
    element(page, "#edit-form input[name=careTags][value=elderly_alone]").click()
    Select(element(page, "#edit-form select[name=role]")).select_by_visible_text("租客")
    set_date(page, "leaseStart", "2026-01-01")
    set_date(page, "leaseEnd", "2027-06-30")
    set_date(page, "movedIn", "2026-01-01")
    submit(page, "#residents")
    assert path_of(page) == household
    rows = [r for r in page.find_elements(By.CSS_SELECTOR, "#residents tr.resident") if name in r.text]
    assert rows and "租客" in rows[0].text and "2027-06-30" in rows[0].text, [r.text for r in rows]
    assert "ended" not in rows[0].get_attribute("class")

    click_and_load(page, rows[0].find_element(By.CSS_SELECTOR, "a[href^='/console/p/']"), "#identity")
    assert element(page, "#identity").text != number and element(page, "#identity").text.endswith(number[-4:])
    assert "独居老人" in element(page, "#care-tags").text
    assert element(page, "a#edit-person").is_displayed()
    page.back()

    # Moving out: the page says who and from where; the date is today's unless changed.
    rows = [r for r in page.find_elements(By.CSS_SELECTOR, "#residents tr.resident") if name in r.text]
    click_and_load(page, rows[0].find_element(By.CSS_SELECTOR, "a.move-out"), "#edit-form")
    assert name in element(page, "#form-lead").text and room in element(page, "#form-lead").text
    assert fits_the_screen(page), f"the move-out page is wider than {SIZES[size][0]} px"
    assert element(page, "#in-movedOut").get_property("value")
    submit(page, "#residents")
    rows = [r for r in page.find_elements(By.CSS_SELECTOR, "#residents tr.resident") if name in r.text]
    assert rows and "ended" in rows[0].get_attribute("class"), [r.text for r in rows]
    assert not rows[0].find_elements(By.CSS_SELECTOR, "a.move-out")
