"""A device that signs in with clean session 0 keeps a persistent session: its page in the console
shows it, with the messages kept for it while it is away."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port  # noqa: E402
from test_console import driver, page, element, log_in  # noqa: E402,F401  (fixtures used by name)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import OPS_PASSWORD, alink_device, create_device, create_product, expect, provision  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("device-session")
    data = work / "data"
    provision(data)
    pk = create_product(data, "access_controller")
    secret = create_device(data, pk, "door-kept")[2]
    port = free_port()
    node = Node(data, mqtt_port=port).start()
    yield {"pk": pk, "secret": secret, "port": port, "url": node.url, "work": work}
    assert node.stop() == 0, node.log.read_text()


@pytest.fixture(scope="module")
def server(site: dict):
    return SimpleNamespace(base_url=site["url"], workdir=site["work"])


def test_the_device_page_shows_a_persistent_session_while_the_device_is_away(site: dict, page):
    pk, dn = site["pk"], "door-kept"
    device, inbox = alink_device(site["port"], (pk, dn, site["secret"]), clean=False)
    assert expect(inbox, "connack")[1] == 0
    device.subscribe(f"/sys/{pk}/{dn}/thing/service/#", 1)
    assert expect(inbox, "suback")[1] == [1]
    device.disconnect()
    device.loop_stop()
    log_in(page, site["url"], "ops", OPS_PASSWORD)
    page.get(f"{site['url']}/console/d/{pk}/{dn}")
    shown = element(page, "#mqtt-session").text
    assert "持久会话" in shown and "离线" in shown and "待送达 0 条消息" in shown, shown
    assert "丢弃" not in shown, "nothing dropped"
