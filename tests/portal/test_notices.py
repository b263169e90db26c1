"""Notices with receipts in real browsers: staff compose a notice with a question in the console and
watch the answers come in live while a resident answers in the portal; the follow-up list shrinks."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, run  # noqa: E402
from test_console import chromium, driver, page, element, log_in, wait  # noqa: E402,F401
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

STAFF_PASSWORD = "staff-password-1"
RESIDENT_PASSWORD = "resident-password-2"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("notices")
    data = work / "data"
    run("demo", "--data", str(data))
    run("user", "password", "--data", str(data), "--username", "staff", "--password-stdin", stdin=STAFF_PASSWORD + "\n")
    run("user", "password", "--data", str(data), "--username", "resident", "--password-stdin", stdin=RESIDENT_PASSWORD + "\n")
    token = run("token", "create", "--data", str(data), "--username", "staff", "--name", "t").stdout.strip().splitlines()[-1]
    node = Node(data).start()
    community = requests.get(node.url + "/api/v1/communities", headers={"Authorization": "Bearer " + token}, timeout=10).json()["items"][0]["id"]
    yield {"url": node.url, "work": work, "community": community}
    assert node.stop() == 0, node.log.read_text()


@pytest.fixture(scope="module")
def server(site: dict):
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


@pytest.fixture
def second_browser(tmp_path: Path):
    """The resident's own browser, beside the staff member's."""
    browser = chromium(tmp_path, "1000,900")
    yield browser
    browser.quit()


def test_a_question_answered_in_the_portal_shows_in_the_console_live(site: dict, page, second_browser):
    staff = page
    log_in(staff, site["url"], "staff", STAFF_PASSWORD)
    wait(staff).until(lambda d: "/login" not in d.current_url)
    staff.get(f"{site['url']}/console/c/{site['community']}")
    element(staff, "#nav-notices").click()
    form = element(staff, "#notice-form")
    form.find_element(By.NAME, "title").send_keys("疫苗接种情况登记 Vaccination survey")
    form.find_element(By.NAME, "body").send_keys("请各户回复接种情况。Please tell us your household's status.")
    form.find_element(By.NAME, "question").send_keys("接种情况 Vaccinated?")
    form.find_element(By.NAME, "options").send_keys("第一针 first / 第二针 second / 未接种 not yet")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(staff).until(lambda d: "/console/notices/" in d.current_url)
    total = int(element(staff, "#progress-answered").text.split("/")[1])
    assert element(staff, "#progress-answered").text.startswith("0 /") and total > 0
    follow_before = len(staff.find_elements(By.CSS_SELECTOR, "#follow-up tbody tr"))
    assert follow_before == total
    time.sleep(0.5)  # the progress stream is open

    resident = second_browser
    log_in(resident, site["url"], "resident", RESIDENT_PASSWORD)
    wait(resident).until(lambda d: d.current_url.endswith("/app"))
    element(resident, "#portal-notices").click()
    assert "未读" in element(resident, "#my-notices").text
    resident.find_element(By.CSS_SELECTOR, "#my-notices a").click()
    buttons = element(resident, "#answer-form").find_elements(By.CSS_SELECTOR, "button.choice")
    assert [b.text for b in buttons] == ["第一针 first", "第二针 second", "未接种 not yet"]
    buttons[1].click()
    wait(resident).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#answered"))
    assert "chosen" in resident.find_element(By.CSS_SELECTOR, "button.choice[value='第二针 second']").get_attribute("class")

    # The staff page updates by itself: one answered, one fewer to follow up.
    wait(staff).until(lambda d: d.find_element(By.CSS_SELECTOR, "#progress-answered").text == f"1 / {total}")
    assert len(staff.find_elements(By.CSS_SELECTOR, "#follow-up tbody tr")) == follow_before - 1
    assert "1" in staff.find_element(By.CSS_SELECTOR, "#answers").text


def test_several_buildings_previewed_then_sent_and_listed_by_answer(site: dict, page):
    """Two buildings and a unit chosen at once, a preview before sending, then the households by
    answer on the notice page and their export as a CSV Excel opens (BOM, Chinese headers)."""
    staff = page
    log_in(staff, site["url"], "staff", STAFF_PASSWORD)
    wait(staff).until(lambda d: "/login" not in d.current_url)
    staff.get(f"{site['url']}/console/c/{site['community']}/notices")
    form = element(staff, "#notice-form")
    form.find_element(By.NAME, "title").send_keys("电梯检修 Lift service")
    form.find_element(By.NAME, "body").send_keys("周三上午 Wednesday morning")
    form.find_element(By.NAME, "question").send_keys("在家吗 Home?")
    form.find_element(By.NAME, "options").send_keys("在 yes / 不在 no")
    form.find_element(By.CSS_SELECTOR, "input[name=to][value=places]").click()
    buildings = Select(form.find_element(By.NAME, "buildings"))
    buildings.select_by_index(0)
    buildings.select_by_index(1)
    Select(form.find_element(By.NAME, "units")).select_by_index(len(form.find_elements(By.CSS_SELECTOR, "select[name=units] option")) - 1)
    chosen = [o.get_attribute("value") for o in buildings.all_selected_options]
    assert len(chosen) == 2
    element(staff, "#preview-notice-button").click()

    preview = element(staff, "#notice-preview")
    assert "电梯检修 Lift service" in preview.find_element(By.CSS_SELECTOR, "h1").text
    assert [b.text for b in preview.find_elements(By.CSS_SELECTOR, "button.choice")] == ["在 yes", "不在 no"]
    reach = int(element(staff, "#preview-reach").text.split("将发给 ")[1].split(" 户")[0])
    assert reach > 0
    # The form came back as it was: both buildings still chosen, sent from here.
    again = Select(element(staff, "#notice-form").find_element(By.NAME, "buildings"))
    assert sorted(o.get_attribute("value") for o in again.all_selected_options) == sorted(chosen)
    element(staff, "#send-notice").click()
    wait(staff).until(lambda d: "/console/notices/" in d.current_url)
    assert element(staff, "#progress-answered").text == f"0 / {reach}"
    titles = [h.text for h in staff.find_elements(By.CSS_SELECTOR, "#answer-lists h3")]
    assert titles == ["在 yes · 0 户", "不在 no · 0 户", f"未回复 · {reach} 户"]

    # The export, with the browser's own session.
    href = element(staff, "#export-answers").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in staff.get_cookies()}
    r = requests.get(href, cookies=cookies, timeout=10)
    assert r.status_code == 200 and r.content.startswith(b"\xef\xbb\xbf")
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("回答 Answer,楼栋 Building,单元 Unit,房号 Room")
    assert all(line.startswith("未回答 No answer,") for line in lines[1:]) and len(lines) - 1 >= reach
