"""The console and the portal under their Content-Security-Policy, in a real headless Chromium:
every page is walked with a listener for CSP violations installed before the page's own scripts,
and the browser's console log is read too; the pages' scripts (the overview's live box, the import's
file upload, the confirm before deleting a rule) still work. Then the account page: a user makes
API tokens, sees them listed as the ones a new password revokes, changes the password, and the old
token gets 401 while the new password signs in.

Run after `swift build --product linli`:

    LINLI_BIN=$PWD/.build/debug/linli python3 -m pytest -q tests/browser/test_csp_and_account.py
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_console import (  # noqa: E402
    _tail,
    chromium,
    click_and_load,
    element,
    log_in,
    page,  # noqa: F401  (a fixture, used by name: screenshots on failure)
    path_of,
    wait,
)
from test_server_process import Node, run  # noqa: E402

ADMIN = ("csp-admin", "csp-admin-password-1")
RESIDENT_PASSWORD = "resident-password-1"
CLERK = ("manager", "manager-password-one")  # the demo's community administrator
CLERK_NEW_PASSWORD = "manager-password-two"

# Installed before any script of each page (DevTools' addScriptToEvaluateOnNewDocument is not
# subject to the page's policy): every violation the page causes is kept for the test to read.
LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
});
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("csp")
    data = work / "data"
    run("demo", "--data", str(data))
    run("user", "create", "--data", str(data), "--username", ADMIN[0], "--role", "platform_admin", "--password-stdin", stdin=ADMIN[1] + "\n")
    run("user", "password", "--data", str(data), "--username", "resident", "--password-stdin", stdin=RESIDENT_PASSWORD + "\n")
    run("user", "password", "--data", str(data), "--username", CLERK[0], "--password-stdin", stdin=CLERK[1] + "\n")
    node = Node(data).start()
    yield {"url": node.url, "work": work}
    assert node.stop() == 0, _tail(node.log)


@pytest.fixture(scope="module")
def server(site: dict):
    # test_console's `page` fixture takes a `server` with these two attributes.
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


@pytest.fixture(scope="module")
def driver(site: dict):
    """Headless Chromium that keeps the console log and installs the violation listener."""
    browser = chromium(site["work"], "1280,1024", logs=True)
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": LISTENER})
    try:
        yield browser
    finally:
        browser.quit()


def violations(driver: WebDriver) -> list[str]:
    """What the current page reported: the listener's record and the console's CSP lines."""
    found = driver.execute_script("return window.__cspViolations || ['the listener is not installed']")
    for entry in driver.get_log("browser"):
        if "Content Security Policy" in entry.get("message", ""):
            found.append(entry["message"])
    return found


def visit(driver: WebDriver, url: str, expect_css: str) -> None:
    driver.get(url)
    element(driver, expect_css)
    # Deferred scripts have run once the document is complete; give their first requests a moment.
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")
    time.sleep(0.3)
    assert violations(driver) == [], f"CSP violations on {url}"


def test_pages_carry_the_policy_and_the_headers(site: dict):
    for path in ("/login", "/console", "/app", "/assets/linli.css", "/api/v1/me"):
        response = requests.get(site["url"] + path, allow_redirects=False, timeout=10)
        policy = response.headers.get("Content-Security-Policy", "")
        for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'"):
            assert directive in policy, f"{path}: {policy!r}"
        assert "unsafe-inline" not in policy
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        assert response.headers.get("Referrer-Policy") == "same-origin"


def test_the_listener_sees_a_violation(site: dict, page: WebDriver):
    """The check can fail: an inline script added by hand is refused and reported."""
    page.get(site["url"] + "/login")
    element(page, "form#login")
    page.get_log("browser")  # start the console log afresh
    page.execute_script("var s = document.createElement('script'); s.textContent = 'window.ranInline = 1'; document.body.appendChild(s);")
    wait(page).until(lambda d: d.execute_script("return window.__cspViolations.length") > 0)
    assert page.execute_script("return window.ranInline") is None, "the inline script did not run"
    assert any("script-src" in v for v in violations(page))


def test_console_pages_work_under_the_policy(site: dict, page: WebDriver, tmp_path: Path):
    base = site["url"]
    log_in(page, base, *ADMIN)
    wait(page).until(lambda d: path_of(d) == "/console")
    assert violations(page) == [], "CSP violations signing in"
    page.get(base + "/console")
    community = element(page, "a.community").get_attribute("href")
    cid = community.rstrip("/").split("/")[-1]
    visit(page, community, "#overview")
    # The page's style sheet is applied (a file now, not an inline <style>).
    header = page.find_element(By.TAG_NAME, "header")
    assert header.value_of_css_property("background-color") in ("rgba(18, 57, 74, 1)", "rgb(18, 57, 74)")
    # The overview's live box (overview.js): a change made elsewhere shows up in it.
    token = create_token(page, base, "csp-live")
    page.get(community)
    element(page, "#live")
    wait(page).until(lambda d: d.execute_script("return document.readyState") == "complete")
    time.sleep(1.0)  # the event stream connects
    made = requests.post(f"{base}/api/v1/communities/{cid}/buildings", json={"name": "CSP 测试楼", "floors": 3},
                         headers={"Authorization": "Bearer " + token}, timeout=10)
    assert made.status_code == 201, made.text
    # The change shows by its label in the page's language (the script takes it from the box's data-label-*).
    wait(page).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#live .change[data-type="building.created"]'))
    live = page.find_element(By.CSS_SELECTOR, '#live .change[data-type="building.created"]').text
    assert "新增楼栋" in live and "building.created" not in live, live
    assert violations(page) == []

    for path, css in [
        (f"/console/c/{cid}/buildings", "main"),
        (f"/console/c/{cid}/households", "main"),
        (f"/console/c/{cid}/people", "main"),
        (f"/console/c/{cid}/devices", "main"),
        (f"/console/c/{cid}/alarms", "#alarm-rows"),
        (f"/console/c/{cid}/rules", "main"),
        (f"/console/c/{cid}/work-orders", "main"),
        (f"/console/c/{cid}/notices", "main"),
        (f"/console/c/{cid}/organisations", "main"),
        (f"/console/c/{cid}/access", "#capabilities"),
        ("/console/audit", "main"),
        ("/console/account", "#password-form"),
        ("/console/no-such-page", "main"),
        ("/api/docs", "h1"),
    ]:
        visit(page, base + path, css)
        if path.endswith("/access"):
            # The capability matrix fits a 1,366-pixel screen without scrolling sideways.
            page.set_window_size(1366, 768)
            overflow = page.execute_script(
                "var t = document.getElementById('capabilities');"
                "return t.getBoundingClientRect().right - document.documentElement.clientWidth;")
            assert overflow <= 0, f"the capability matrix is {overflow}px too wide at 1366px"

    # A device's page (device.js keeps its status live), for a product and device made here.
    bearer = {"Authorization": "Bearer " + token}
    product = requests.post(f"{base}/api/v1/communities/{cid}/products", json={"library": "environment_sensor"}, headers=bearer, timeout=10)
    assert product.status_code == 201, product.text
    pk = product.json()["productKey"]
    device = requests.post(f"{base}/api/v1/communities/{cid}/devices", json={"productKey": pk, "deviceName": "csp-sensor-1"}, headers=bearer, timeout=10)
    assert device.status_code == 201, device.text
    visit(page, f"{base}/console/c/{cid}/devices", "tr.device")
    visit(page, f"{base}/console/d/{pk}/csp-sensor-1", "#device-status")
    visit(page, f"{base}/console/products/{pk}", "main")

    # The import page sends a chosen file as it is (multipart, GBK as Excel saves it), no script needed.
    visit(page, f"{base}/console/c/{cid}/import", "#csv-file")
    sheet = tmp_path / "sheet.csv"
    sheet.write_bytes("楼栋,单元,房号\n1号楼,1单元,999\n".encode("gbk"))
    page.find_element(By.ID, "csv-file").send_keys(str(sheet))
    page.find_element(By.ID, "create-places").click()
    click_and_load(page, page.find_element(By.ID, "import-submit"), "#import-report")
    assert element(page, "#import-summary").get_attribute("data-imported") == "true", element(page, "#import-report").text
    assert violations(page) == []

    # Deleting a rule asks first (linli.js, in place of an inline onsubmit): dismissed, it stays.
    rule = requests.post(f"{base}/api/v1/communities/{cid}/rules", headers=bearer, timeout=10, json={
        "name": "CSP 高温 hot",
        "triggers": [{"type": "property", "productKey": pk, "property": "CurrentTemperature", "op": ">", "value": 30}],
        "actions": [{"type": "alarm", "alarmType": "high_temperature", "severity": "major"}],
    })
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]
    visit(page, f"{base}/console/rules/{rule_id}", "#definition")
    page.find_element(By.CSS_SELECTOR, "form[data-confirm] button[type=submit]").click()
    alert = wait(page).until(lambda d: d.switch_to.alert)
    assert "删除这条规则？" in alert.text
    alert.dismiss()
    assert page.find_elements(By.ID, "definition"), "dismissed: still on the rule's page"
    assert requests.get(f"{base}/api/v1/rules/{rule_id}", headers=bearer, timeout=10).status_code == 200
    assert violations(page) == []


def test_portal_pages_work_under_the_policy(site: dict, page: WebDriver):
    base = site["url"]
    log_in(page, base, "resident", RESIDENT_PASSWORD)
    wait(page).until(lambda d: path_of(d) == "/app")
    assert violations(page) == [], "CSP violations signing in"
    for path, css in [("/app", "main"), ("/app/inbox", "#inbox"), ("/app/reports", "main"), ("/app/reports/new", "form"), ("/app/notices", "main")]:
        visit(page, base + path, css)


def create_token(page: WebDriver, base: str, name: str) -> str:
    """Makes an API token on the account page; returns it (shown once)."""
    page.get(base + "/console/account")
    form = element(page, "form[action='/console/account/tokens']")
    form.find_element(By.NAME, "name").send_keys(name)
    click_and_load(page, form.find_element(By.CSS_SELECTOR, "button[type=submit]"), "#new-token")
    assert violations(page) == []
    return page.find_element(By.ID, "new-token").text.strip()


def test_a_new_password_lists_then_revokes_the_tokens_and_the_new_one_signs_in(site: dict, page: WebDriver):
    base = site["url"]
    log_in(page, base, *CLERK)
    wait(page).until(lambda d: path_of(d).startswith("/console/c/"))  # a manager of one community lands in it
    laptop = create_token(page, base, "laptop")
    script = create_token(page, base, "nightly-script")
    for token in (laptop, script):
        assert requests.get(base + "/api/v1/me", headers={"Authorization": "Bearer " + token}, timeout=10).status_code == 200

    page.get(base + "/console/account")
    form = element(page, "#password-form")
    listed = element(page, "#tokens-to-revoke").text
    assert "laptop" in listed and "nightly-script" in listed, f"the tokens to go are listed first: {listed!r}"
    form.find_element(By.NAME, "current").send_keys(CLERK[1])
    form.find_element(By.NAME, "new").send_keys(CLERK_NEW_PASSWORD)
    click_and_load(page, form.find_element(By.CSS_SELECTOR, "button[type=submit]"), "form#login")
    assert path_of(page) == "/login", "every session ended, this one too"
    assert violations(page) == []

    for token in (laptop, script):
        answer = requests.get(base + "/api/v1/me", headers={"Authorization": "Bearer " + token}, timeout=10)
        assert answer.status_code == 401, f"an old token still answers {answer.status_code}"
        assert answer.headers.get("Content-Type", "").startswith("application/problem+json")

    log_in(page, base, *CLERK)
    assert path_of(page) == "/login" and page.find_elements(By.CSS_SELECTOR, ".error"), "the old password no longer signs in"
    log_in(page, base, CLERK[0], CLERK_NEW_PASSWORD)
    wait(page).until(lambda d: path_of(d).startswith("/console/c/"))
    visit(page, base + "/console/account", "#tokens")
    rows = page.find_elements(By.CSS_SELECTOR, "#tokens tbody tr")
    assert len(rows) == 2 and all("已吊销" in row.text for row in rows), [row.text for row in rows]
    assert not page.find_elements(By.ID, "tokens-to-revoke"), "no live token left to list"
