"""The lockout attack, replayed against the real server behind a reverse proxy: someone else's wrong
passwords, as many as they like and from as many addresses, do not keep an account's owner out.
`X-Forwarded-For` is believed only from the configured proxy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_server_process import Node, run  # noqa: E402

PASSWORD = "owner-password-1"


@pytest.fixture
def node(tmp_path: Path):
    data = tmp_path / "data"
    run("migrate", "--data", str(data))
    run("user", "create", "--data", str(data), "--username", "owner", "--role", "platform_admin", "--password-stdin",
        stdin=PASSWORD + "\n")
    # The test speaks from 127.0.0.1, standing in for the reverse proxy in front of Linli.
    n = Node(data, args=["--trusted-proxies", "127.0.0.1"]).start()
    yield n
    assert n.stop() == 0, n.log.read_text()


def sign_in(node: Node, password: str, client: str, session: requests.Session | None = None) -> int:
    return (session or requests).post(node.url + "/api/v1/session", json={"username": "owner", "password": password},
                                      headers={"X-Forwarded-For": client}, timeout=10).status_code


def test_ten_wrong_passwords_from_elsewhere_leave_the_owner_signing_in(node: Node):
    attacker = [sign_in(node, f"wrong guess {i}", "203.0.113.66") for i in range(15)]
    assert attacker[:3] == [401, 401, 401] and 429 in attacker, attacker
    # The owner, from an address of their own that never failed, on a browser never seen before.
    assert sign_in(node, PASSWORD, "198.51.100.10") == 200
    # The attacker's own address stays locked, the right password included: no racing the lock.
    assert sign_in(node, PASSWORD, "203.0.113.66") == 429


def test_guesses_spread_over_many_addresses_slow_strangers_but_not_the_owners_browser(node: Node):
    browser = requests.Session()
    assert sign_in(node, PASSWORD, "198.51.100.10", browser) == 200
    assert "linli_browser" in browser.cookies
    # A botnet: two guesses from each of 40 addresses, fewer than any one address is locked for.
    for i in range(40):
        for _ in range(2):
            assert sign_in(node, "wrong guess", f"203.0.113.{i + 1}") in (401, 429)
    # Somebody the account does not know now waits (a minute at most), and is told how long.
    stranger = requests.post(node.url + "/api/v1/session", json={"username": "owner", "password": PASSWORD},
                             headers={"X-Forwarded-For": "192.0.2.200"}, timeout=10)
    assert stranger.status_code == 429 and 1 <= int(stranger.headers["Retry-After"]) <= 61, stranger.text
    # The owner's browser — even from a new address, even behind the attackers' NAT — is not.
    assert sign_in(node, PASSWORD, "192.0.2.201", browser) == 200
    assert sign_in(node, PASSWORD, "203.0.113.5", browser) == 200
    # And the owner's address, known from the first sign-in, is not held back either.
    assert sign_in(node, PASSWORD, "198.51.100.10") == 200


def test_forwarded_for_from_anyone_else_is_ignored(tmp_path: Path):
    data = tmp_path / "data"
    run("migrate", "--data", str(data))
    run("user", "create", "--data", str(data), "--username", "owner", "--role", "platform_admin", "--password-stdin",
        stdin=PASSWORD + "\n")
    n = Node(data).start()
    try:
        # Without a trusted proxy, each guess naming a new address is still the one client it is.
        codes = [sign_in(n, "wrong guess", f"203.0.113.{i + 1}") for i in range(5)]
        assert codes[:3] == [401, 401, 401] and 429 in codes[3:], codes
    finally:
        assert n.stop() == 0, n.log.read_text()
