"""The resident portal's 报事报修 in a real browser: a resident reports a problem with a photo,
follows it while staff handle it, rates the result; a file that is not an image is refused."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, run  # noqa: E402
from test_console import driver, page, element, log_in, wait  # noqa: E402,F401  (fixtures used by name)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

PASSWORD = "resident-password-1"
STAFF_PASSWORD = "staff-password-1"


def tiny_png(path: Path) -> Path:
    """A real 2×2 PNG, made here so the test needs no fixture file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("portal")
    data = work / "data"
    run("demo", "--data", str(data))
    run("user", "password", "--data", str(data), "--username", "resident", "--password-stdin", stdin=PASSWORD + "\n")
    run("user", "password", "--data", str(data), "--username", "staff", "--password-stdin", stdin=STAFF_PASSWORD + "\n")
    staff_token = run("token", "create", "--data", str(data), "--username", "staff", "--name", "t").stdout.strip().splitlines()[-1]
    node = Node(data).start()
    yield {"url": node.url, "work": work, "staff": {"Authorization": "Bearer " + staff_token}}
    assert node.stop() == 0, node.log.read_text()


@pytest.fixture(scope="module")
def server(site: dict):
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


def test_a_resident_reports_with_a_photo_follows_it_and_rates_it(site: dict, page, tmp_path: Path):
    log_in(page, site["url"], "resident", PASSWORD)
    wait(page).until(lambda d: d.current_url.endswith("/app"))
    element(page, "#portal-report").click()
    form = element(page, "#report-form")
    Select(form.find_element(By.NAME, "category")).select_by_value("repair")
    form.find_element(By.NAME, "title").send_keys("楼道灯不亮 stairwell light out")
    form.find_element(By.NAME, "description").send_keys("3楼 third floor")
    form.find_element(By.NAME, "photo").send_keys(str(tiny_png(tmp_path / "light.png")))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The form itself is /app/reports/new: wait for the report's own page.
    wait(page).until(lambda d: "/app/reports/" in d.current_url and not d.current_url.endswith("/new"))
    report_id = page.current_url.rsplit("/", 1)[1]
    assert element(page, "#report-status").get_attribute("data-status") == "submitted"
    assert element(page, "#report-status").text == "待受理"
    assert not page.find_elements(By.CSS_SELECTOR, "#photo-problem"), "a kept photo needs no message"
    photo = element(page, "#photos img")
    # The photo is served back (waited for: the image loads after the page).
    wait(page).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", photo) == 2)

    # Staff handle it through the API; the resident sees every step.
    for step in ({"step": "accept"}, {"step": "grab"}, {"step": "resolve", "note": "已换灯泡 bulb replaced"}):
        r = requests.post(site["url"] + f"/api/v1/work-orders/{report_id}/steps", json=step, headers=site["staff"], timeout=10)
        assert r.status_code == 200, r.text
    page.refresh()
    assert element(page, "#report-status").get_attribute("data-status") == "resolved"
    assert "已换灯泡" in element(page, "#timeline").text
    rate = element(page, "#rate-form")
    rate.find_element(By.CSS_SELECTOR, "input[name=rating][value='4']").click()
    rate.find_element(By.NAME, "comment").send_keys("及时 prompt")
    rate.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(page).until(EC.staleness_of(rate))
    assert element(page, "#report-status").get_attribute("data-status") == "closed"
    assert element(page, "#report-rating").text == "★★★★"
    # Still within the week: it can be reopened.
    assert page.find_elements(By.CSS_SELECTOR, "#reopen-form")
    page.get(site["url"] + "/app/reports")
    assert "楼道灯不亮" in element(page, "#reports").text


def test_a_file_that_is_not_an_image_is_refused_and_the_report_kept(site: dict, page, tmp_path: Path):
    log_in(page, site["url"], "resident", PASSWORD)
    wait(page).until(lambda d: d.current_url.endswith("/app"))
    page.get(site["url"] + "/app/reports/new")
    form = element(page, "#report-form")
    Select(form.find_element(By.NAME, "category")).select_by_value("noise")
    form.find_element(By.NAME, "title").send_keys("夜间施工 night works")
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"this is not an image at all")
    form.find_element(By.NAME, "photo").send_keys(str(fake))
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The form itself is /app/reports/new: wait for the report's own page.
    wait(page).until(lambda d: "/app/reports/" in d.current_url and not d.current_url.endswith("/new"))
    assert "照片没有保存" in element(page, "#photo-problem").text and "JPEG" in element(page, "#photo-problem").text
    assert element(page, "#report-status").get_attribute("data-status") == "submitted"
    assert not page.find_elements(By.CSS_SELECTOR, "#photos img")


def test_staff_work_the_order_on_the_board(site: dict, page):
    staff_headers = site["staff"]
    community = requests.get(site["url"] + "/api/v1/communities", headers=staff_headers, timeout=10).json()["items"][0]["id"]
    made = requests.post(site["url"] + f"/api/v1/communities/{community}/work-orders", headers=staff_headers,
                         json={"category": "sanitation", "title": "垃圾未清运 bins not emptied", "location": "2号楼 building 2"}, timeout=10).json()
    log_in(page, site["url"], "staff", STAFF_PASSWORD)
    wait(page).until(lambda d: "/login" not in d.current_url)
    page.get(f"{site['url']}/console/c/{community}/work-orders")
    link = next(a for a in element(page, "#work-orders").find_elements(By.CSS_SELECTOR, "a") if a.text == made["number"])
    link.click()
    assert element(page, "#order-status").get_attribute("data-status") == "submitted"
    def act(css: str) -> None:
        """Clicks a step and waits for the page it leads to (the same address, a new page)."""
        marker = element(page, "#timeline")
        page.execute_script("arguments[0].click()", element(page, css))
        wait(page).until(EC.staleness_of(marker))

    for step, status in (("accept", "accepted"), ("grab", "assigned"), ("start", "in_progress")):
        act(f"#step-form button.step-{step}")
        assert element(page, "#order-status").get_attribute("data-status") == status
    # Resolving needs a note: refused without one, done with one.
    act("#step-form button.step-resolve")
    assert "需要填写说明" in element(page, "#step-error").text
    element(page, "#step-form input[name=note]").send_keys("已清运 emptied")
    act("#step-form button.step-resolve")
    assert element(page, "#order-status").get_attribute("data-status") == "resolved"
    assert "已清运" in element(page, "#timeline").text
    assert requests.get(site["url"] + f"/api/v1/work-orders/{made['id']}", headers=staff_headers, timeout=10).json()["status"] == "resolved"


def heic(path: Path) -> Path:
    """The start of an iPhone photo: an ISO media `ftyp` box with the `heic` brand (the portal
    keeps it as it is and offers it as a download; browsers other than Safari cannot show it)."""
    box = b"ftyp" + b"heic" + struct.pack(">I", 0) + b"mif1heic"
    path.write_bytes(struct.pack(">I", len(box) + 4) + box + b"\x00" * 64)
    return path


def test_on_a_phone_a_report_says_where_and_when_and_follows_its_work_live(site: dict, page, tmp_path: Path):
    page.set_window_size(390, 844)
    try:
        log_in(page, site["url"], "resident", PASSWORD)
        wait(page).until(lambda d: d.current_url.endswith("/app"))
        element(page, "#portal-report").click()
        form = element(page, "#report-form")
        Select(form.find_element(By.NAME, "category")).select_by_value("repair")
        form.find_element(By.NAME, "title").send_keys("单元门禁坏了")
        # At home (the default), with a time someone may come: the first day offered, the afternoon.
        assert form.find_element(By.CSS_SELECTOR, "input[name=place][value=home]").is_selected()
        day = page.execute_script("return arguments[0].min", form.find_element(By.NAME, "visitDate"))
        page.execute_script("arguments[0].value = arguments[1]", form.find_element(By.NAME, "visitDate"), day)
        Select(form.find_element(By.NAME, "visitSlot")).select_by_value("afternoon")
        form.find_element(By.NAME, "photo").send_keys(str(heic(tmp_path / "IMG_0001.HEIC")))
        send = form.find_element(By.CSS_SELECTOR, "button[type=submit]")
        # As a thumb would: scrolled up from under the tab bar first.
        page.execute_script("arguments[0].scrollIntoView({block: 'center'})", send)
        send.click()
        wait(page).until(lambda d: "/app/reports/" in d.current_url and not d.current_url.endswith("/new"))
        report_id = page.current_url.rsplit("/", 1)[1]
        assert "号楼" in element(page, "#report-location").text, "the home's building, unit and room"
        assert "14:00" in element(page, "#report-visit").text, element(page, "#report-visit").text
        assert not page.find_elements(By.CSS_SELECTOR, "#photo-problem"), "a kept photo needs no message"
        assert element(page, "#photos a.photo-file").text, "an iPhone photo is kept and offered as a file"
        assert not page.find_elements(By.CSS_SELECTOR, "#photos img")

        # Staff accept it: the page changes by itself (no reload), and an inbox message says so.
        marker = page.execute_script("window.__same = true; return window.__same")
        assert marker is True
        r = requests.post(
            site["url"] + f"/api/v1/work-orders/{report_id}/steps", json={"step": "accept"}, headers=site["staff"], timeout=10
        )
        assert r.status_code == 200, r.text
        wait(page).until(lambda d: element(d, "#report-status").get_attribute("data-status") == "accepted")
        assert page.execute_script("return window.__same === true"), "the page was not reloaded"
        assert element(page, "#report-status").text == "已受理"
        page.get(site["url"] + "/app/inbox")
        wait(page).until(lambda d: "单元门禁坏了" in element(d, "#inbox").text)
        assert element(page, "nav a[href='/app/inbox'][aria-current=page]")
    finally:
        page.set_window_size(1280, 1024)
