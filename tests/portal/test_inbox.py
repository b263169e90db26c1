"""Notifications that leave Linli, and the inbox live in the portal.

A resident asks for SMS and e-mail in the portal; a notice then appears in their inbox without a
reload, reaches the SMS gateway's webhook (signed) and a real SMTP server (aiosmtpd). Quiet hours
hold the copies back, not the inbox; a critical alarm goes through quiet hours.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, free_port, run  # noqa: E402
from test_console import driver, page, element, log_in, wait  # noqa: E402,F401
from selenium.webdriver.common.by import By  # noqa: E402

STAFF_PASSWORD = "staff-password-1"
RESIDENT_PASSWORD = "resident-password-2"
SMS_SECRET = "sms-gateway-secret-0123456789"


class Mailbox:
    """An SMTP server's handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


class SMSGateway(BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        SMSGateway.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("inbox")
    data = work / "data"
    run("demo", "--data", str(data))
    run("user", "password", "--data", str(data), "--username", "staff", "--password-stdin", stdin=STAFF_PASSWORD + "\n")
    run("user", "password", "--data", str(data), "--username", "resident", "--password-stdin", stdin=RESIDENT_PASSWORD + "\n")
    staff = run("token", "create", "--data", str(data), "--username", "staff", "--name", "t").stdout.strip().splitlines()[-1]
    resident = run("token", "create", "--data", str(data), "--username", "resident", "--name", "t").stdout.strip().splitlines()[-1]

    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), SMSGateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    # The gateway's secret is not a command-line flag (it would show in `ps`): a config file.
    config = work / "linli.conf"
    config.write_text(f"sms-secret = {SMS_SECRET}\n")
    node = Node(data, args=["--config", str(config), "--smtp", f"smtp://127.0.0.1:{smtp.port}", "--mail-from", "linli@example.org",
                            "--sms-webhook", f"http://127.0.0.1:{gateway.server_address[1]}/sms"]).start()
    community = requests.get(node.url + "/api/v1/communities", headers={"Authorization": "Bearer " + staff}, timeout=10).json()["items"][0]["id"]
    yield SimpleNamespace(url=node.url, work=work, community=community, staff=staff, resident=resident, mailbox=mailbox, node=node)
    smtp.stop()
    gateway.shutdown()
    assert node.stop() == 0, node.log.read_text()


@pytest.fixture(scope="module")
def server(site):
    return SimpleNamespace(base_url=site.url, workdir=site.work)


def call(site, token: str, method: str, path: str, body: dict | None = None, expect: int = 200) -> dict:
    r = requests.request(method, site.url + "/api/v1" + path, json=body, headers={"Authorization": "Bearer " + token}, timeout=10)
    assert r.status_code == expect, r.text
    return r.json() if r.content else {}


def until(what, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("not within %.0f s" % timeout)


def sms_to(phone: str) -> list[dict]:
    out = []
    for headers, body in SMSGateway.received:
        expected = "sha256=" + hmac.new(SMS_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers.get("X-Linli-Signature") == expected, "every SMS is signed with the gateway's secret"
        payload = json.loads(body)
        if payload["to"] == phone:
            out.append(payload)
    return out


def test_a_notice_reaches_the_inbox_live_and_goes_out_by_sms_and_email(site, page):
    resident = page
    log_in(resident, site.url, "resident", RESIDENT_PASSWORD)
    wait(resident).until(lambda d: d.current_url.endswith("/app"))
    element(resident, "#nav-inbox").click()
    form = element(resident, "#preferences")
    form.find_element(By.NAME, "sms").click()
    form.find_element(By.NAME, "phone").send_keys("138 0013 8000")
    form.find_element(By.NAME, "email").click()
    form.find_element(By.NAME, "address").send_keys("resident@example.org")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    element(resident, "#preferences-saved")
    prefs = call(site, site.resident, "GET", "/me/notification-preferences")
    assert prefs["sms"] and prefs["email"] and prefs["phone"] == "138****8000" and prefs["address"] == "r***@example.org"
    assert sorted(prefs["available"]) == ["email", "sms"]
    unread = int(element(resident, "#inbox-unread").text)
    time.sleep(0.5)  # the inbox stream is open

    call(site, site.staff, "POST", f"/communities/{site.community}/notices",
         {"title": "停水通知 Water off", "body": "周三 10:00–12:00 停水。No water Wednesday 10–12.", "audience": {"everyone": True}}, expect=201)
    # Live: the new message is at the top without a reload, and the unread count went up.
    wait(resident).until(lambda d: "停水通知" in d.find_element(By.CSS_SELECTOR, "#inbox li").text)
    assert int(element(resident, "#inbox-unread").text) == unread + 1

    sms = until(lambda: sms_to("13800138000"))
    assert "停水通知 Water off" in sms[0]["text"] and sms[0]["text"].startswith("【Linli】")
    mail_from, to, content = until(lambda: [m for m in site.mailbox.messages if "resident@example.org" in m[1]])[0]
    assert mail_from == "linli@example.org"
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert "停水通知 Water off" in message["Subject"]
    assert "No water Wednesday" in message.get_content()
    sent = call(site, site.staff, "GET", f"/communities/{site.community}/outbound-messages?status=sent")["items"]
    mine = {m["channel"]: m for m in sent if m["to"] in ("138****8000", "r***@example.org")}
    assert set(mine) == {"sms", "email"} and all(m["attempts"] == 1 for m in mine.values())
    # Residents do not see what the community sent.
    call(site, site.resident, "GET", f"/communities/{site.community}/outbound-messages", expect=403)


def test_quiet_hours_hold_copies_back_but_not_critical_alarms(site):
    now = time.localtime()
    start = time.strftime("%H:%M", time.localtime(time.time() - 3600))
    end = time.strftime("%H:%M", time.localtime(time.time() + 3600))
    assert now  # the server runs on this machine, in its time zone
    call(site, site.resident, "PUT", "/me/notification-preferences", {"quietFrom": start, "quietTo": end})
    call(site, site.staff, "PUT", "/me/notification-preferences", {"sms": True, "phone": "+8613900139000", "quietFrom": start, "quietTo": end})
    # A rule that raises a critical alarm and tells the staff member whenever a notice goes out.
    call(site, site.staff, "POST", f"/communities/{site.community}/rules",
         {"name": "公告告警 Notice drill", "triggers": [{"type": "domain", "eventType": "notice.published"}],
          "actions": [{"type": "alarm", "alarmType": "drill", "severity": "critical", "message": "演练 Drill"},
                      {"type": "notify", "to": {"accounts": ["staff"]}, "message": "演练 Drill: a notice went out"}]}, expect=201)
    time.sleep(0.5)
    before = len(sms_to("13800138000"))
    call(site, site.staff, "POST", f"/communities/{site.community}/notices",
         {"title": "夜间施工 Night works", "body": "b", "audience": {"everyone": True}}, expect=201)
    # The critical notification reaches the staff member at once, quiet hours or not.
    drill = until(lambda: sms_to("+8613900139000"))
    assert "Drill" in drill[0]["text"] and drill[0]["severity"] == "critical"
    # The notice is in the resident's inbox, and its copies wait for the end of the quiet hours.
    inbox = call(site, site.resident, "GET", "/me/notifications")["items"]
    assert inbox[0]["title"] == "夜间施工 Night works"
    pending = call(site, site.staff, "GET", f"/communities/{site.community}/outbound-messages?status=pending")["items"]
    held = [m for m in pending if m["subject"] == "夜间施工 Night works" and m["to"] in ("138****8000", "r***@example.org")]
    assert len(held) == 2 and all(m["dueAt"] > time.time() * 1000 + 50 * 60 * 1000 for m in held)
    time.sleep(2)
    assert len(sms_to("13800138000")) == before
    # What a request leaves out stays as it was.
    kept = call(site, site.staff, "PUT", "/me/notification-preferences", {"sms": True})
    assert kept["quietFrom"] == start and kept["quietTo"] == end and kept["phone"] == "+86*******9000"
    assert call(site, site.staff, "PUT", "/me/notification-preferences", {"quietFrom": "", "quietTo": ""}).get("quietFrom") is None
    # Faults name their field.
    problem = call(site, site.resident, "PUT", "/me/notification-preferences", {"quietFrom": "25:00", "quietTo": "07:00", "address": "not-an-address"}, expect=422)
    assert {e["field"] for e in problem["errors"]} == {"quietFrom", "address"}


def test_a_notice_can_also_text_residents_on_their_registered_phones(site):
    me = call(site, site.resident, "GET", "/me")
    household = next(b["householdId"] for b in me["roles"] if b.get("householdId"))
    notice = call(site, site.staff, "POST", f"/communities/{site.community}/notices",
                  {"title": "电梯检修 Lift maintenance", "body": "周五停用。Out of service Friday.", "audience": {"households": [household]},
                   "smsResidents": True}, expect=201)
    # Who should get it: the household's residents with a phone, from the follow-up list (full numbers).
    follow = call(site, site.staff, "GET", f"/notices/{notice['id']}/follow-up")["items"]
    phones = {r["phone"] for f in follow for r in f["residents"] if r["phone"]}
    assert phones, "the demo household has residents with phones"
    queued = [m for m in call(site, site.staff, "GET", f"/communities/{site.community}/outbound-messages?limit=200")["items"]
              if m.get("noticeId") == notice["id"] and m.get("personId")]
    assert len(queued) == len(phones) and all(m["personId"] and m["channel"] == "sms" and "accountId" not in m for m in queued)
    tally = call(site, site.staff, "GET", f"/notices/{notice['id']}")["progress"]["outbound"]
    assert sum(tally.values()) >= len(phones), "the notice counts its texts (and the resident's own copies)"
    hour = time.localtime().tm_hour
    if hour >= 22 or hour < 7:
        # Published at night, the texts wait for the morning.
        assert all(m["status"] == "pending" and m["dueAt"] > time.time() * 1000 for m in queued)
    else:
        until(lambda: all(any("电梯检修" in m["text"] for m in sms_to(p)) for p in phones))
