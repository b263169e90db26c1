"""A device's chart in a real headless Chromium: a sensor of the demo community posts values over
MQTT at known times (20 minutes, 10 hours and 3 days ago, and one 10 days ago that no range
shows), and its page shows the last 24 hours by default, switches to the last hour (one value: a
dot with its value beside it) and to the last 7 days, keeping the range in the URL; pointing at a
dot shows its value, unit and Beijing time.

Run after `swift build --product linli`:

    LINLI_BIN=$PWD/.build/debug/linli python3 -m pytest -q tests/browser/test_device_chart.py
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_console import (  # noqa: E402
    _tail,
    site_fixtures,
    element,
    log_in,
    page,  # noqa: F401  (a fixture, used by name: screenshots on failure)
    wait,
)
from test_server_process import Node, free_port, run  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mqtt"))
from clients import alink_device, create_device, create_product, expect  # noqa: E402

CLERK = ("manager", "manager-password-chart")  # the demo's community administrator
BEIJING = timezone(timedelta(hours=8))
MINUTE = 60_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("chart")
    data = work / "data"
    run("demo", "--data", str(data))
    run("user", "password", "--data", str(data), "--username", CLERK[0], "--password-stdin", stdin=CLERK[1] + "\n")
    pk = create_product(data, "environment_sensor")
    triple = create_device(data, pk, "env-chart")
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    # The sensor posts its values, each with the time it measured it.
    now = int(time.time() * 1000)
    values = {now - 10 * 1440 * MINUTE: 99, now - 3 * 1440 * MINUTE: 12.5, now - 600 * MINUTE: 18, now - 20 * MINUTE: 21.5}
    c, inbox = alink_device(port, triple)
    assert expect(inbox, "connack")[1] == 0
    for i, (at, value) in enumerate(sorted(values.items())):
        body = {"id": str(i), "version": "1.0", "params": {"CurrentTemperature": {"value": value, "time": at}}}
        info = c.publish(f"/sys/{pk}/env-chart/thing/event/property/post", json.dumps(body), qos=1)
        info.wait_for_publish(5)
        assert info.is_published()
    c.loop_stop()
    c.disconnect()
    yield {"url": node.url, "work": work, "pk": pk, "values": values}
    assert node.stop() == 0, _tail(node.log)


server, driver = site_fixtures("1280,1024")


def titles(driver: WebDriver) -> list[str]:
    """What each dot of the chart says, oldest first."""
    return [t.get_attribute("textContent") for t in driver.find_elements(By.CSS_SELECTOR, "#chart svg circle.point title")]


def beijing(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def switch(driver: WebDriver, code: str) -> None:
    """Follows the range link `code` and waits for the chart of that range."""
    driver.find_element(By.CSS_SELECTOR, f"#chart-ranges a[data-range='{code}']").click()
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#chart svg[data-range='{code}']"))


def test_ranges_show_their_points_and_a_dot_tells_its_value(site: dict, page: WebDriver):
    base, pk, values = site["url"], site["pk"], site["values"]
    by_value = {v: at for at, v in values.items()}
    log_in(page, base, *CLERK)
    page.get(f"{base}/console/d/{pk}/env-chart")

    # The last 24 hours unless asked otherwise: two values, joined by a line.
    element(page, "#chart svg[data-range='24h']")
    assert page.find_element(By.CSS_SELECTOR, "#chart-ranges a[aria-current='page']").get_attribute("data-range") == "24h"
    assert titles(page) == [f"18 °C · {beijing(by_value[18])}", f"21.5 °C · {beijing(by_value[21.5])}"]
    assert page.find_elements(By.CSS_SELECTOR, "#chart svg polyline.line")
    assert "温度（°C）" in page.find_element(By.CSS_SELECTOR, "#chart svg").get_attribute("textContent")

    # The last hour: one value, a dot that can be seen, its value written beside it.
    switch(page, "1h")
    assert parse_qs(urlparse(page.current_url).query)["range"] == ["1h"]
    assert titles(page) == [f"21.5 °C · {beijing(by_value[21.5])}"]
    dot = page.find_element(By.CSS_SELECTOR, "#chart svg circle.point")
    assert dot.size["width"] >= 6 and dot.is_displayed()
    assert page.find_element(By.CSS_SELECTOR, "#chart svg text.point-value").text == "21.5 °C"

    # The last 7 days: three values, never the one from ten days ago.
    switch(page, "7d")
    assert parse_qs(urlparse(page.current_url).query)["range"] == ["7d"]
    shown = titles(page)
    assert [t.split(" ·")[0] for t in shown] == ["12.5 °C", "18 °C", "21.5 °C"]
    assert not any("99" in t.split(" ·")[0] for t in shown)

    # Pointing at a dot shows its value and time under the chart.
    readout = page.find_element(By.ID, "chart-readout")
    assert "12.5" not in readout.text
    first = page.find_elements(By.CSS_SELECTOR, "#chart svg circle.point")[0]
    ActionChains(page).move_to_element(first).perform()
    wait(page).until(lambda d: "12.5 °C" in d.find_element(By.ID, "chart-readout").text)
    assert beijing(by_value[12.5]) in readout.text
    ActionChains(page).move_to_element(page.find_elements(By.CSS_SELECTOR, "#chart svg circle.point")[2]).perform()
    wait(page).until(lambda d: "21.5 °C" in d.find_element(By.ID, "chart-readout").text)

    # The range stays when another property is chosen, and an empty range says so.
    page.get(f"{base}/console/d/{pk}/env-chart?property=Noise&range=1h")
    assert not page.find_elements(By.CSS_SELECTOR, "#chart svg circle.point")
    assert "最近 1 小时没有数值" in page.find_element(By.CSS_SELECTOR, "#chart svg").get_attribute("textContent")
    assert page.find_element(By.CSS_SELECTOR, "#chart-property input[name=range]").get_attribute("value") == "1h"
