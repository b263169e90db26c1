"""Every console and portal page speaks one language at a time.

On the demo data, each role's pages are walked (every same-site link reachable from its first page),
each fetched once in Chinese and once in English (`Accept-Language`, the accounts having chosen
nothing). A Chinese page may hold no English word, an English page no Chinese, except what the
community's own data says: names, rooms, device names are what they are. What counts as data is read
from the demo's database itself (every text it stores), so a label written into a template or made in
code, in the wrong language or doubled ("房屋 Households"), is caught. Then the header's switch, in
Chromium: chosen once, kept on the next page and at the next sign-in.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections import deque
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urljoin, urlsplit

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_server_process import Node, run  # noqa: E402
from test_console import driver, page, element, log_in, wait, path_of  # noqa: E402,F401
from selenium.webdriver.common.by import By  # noqa: E402

PASSWORD = "language-test-password-1"
ROLES = ["manager", "staff", "grid", "guard", "police", "resident"]
# Words a Chinese page may hold: the brand, and names of formats and protocols people know as such.
ALLOWED_LATIN = {"Linli", "CSV", "API", "MQTT", "TSL", "JSON", "TLS", "OTA", "SOS", "UTC", "HTTP", "HTTPS", "URL", "SMS",
                 "Open311", "Alink", "Webhook", "webhook",
                 "JPEG", "PNG", "WebP", "HEIC", "MiB", "KiB", "YYYY", "Ctrl", "Mac"}
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]+")
# Punctuation of either script alone is not a word of it.
CJK_PUNCTUATION = set("\u3000、。〃〈〉《》「」『』【】〔〕〖〗〘〙〜〝〞〟（），：；！？．／＼～｜－＿＋＝＜＞％＃＆＊＠·…—")
PAGES_PER_ROLE = 120
SAME_SHAPE = 3  # pages of one shape (/console/h/{id}) walked per role: the template is what is checked


class VisibleText(HTMLParser):
    """The texts a person sees: text nodes outside script and style, and the attributes shown
    (placeholder, title, aria-label, a submit button's value, the phone layout's data-label)."""

    SHOWN = {"placeholder", "title", "aria-label", "data-label", "alt", "data-confirm"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, language: str = "zh-CN") -> None:
        super().__init__(convert_charrefs=True)
        self.language = language
        self.items: list[str] = []
        self.links: list[str] = []
        self._skip = 0
        # An element marked as another language (the header's switch offers the other language in
        # its own words) is left out with what it holds: (its tag, how deep in same-named tags).
        self._other: tuple[str, int] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self._other:
            if tag == self._other[0]:
                self._other = (tag, self._other[1] + 1)
            return
        if tag != "html" and a.get("lang") and a["lang"] != self.language:
            if tag not in self.VOID:
                self._other = (tag, 1)
            return
        # Code people type as it is (a command, an API path, a rule's JSON) is no word of either language.
        if tag in ("script", "style", "code", "textarea", "pre"):
            self._skip += 1
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        for name in self.SHOWN:
            if a.get(name):
                self.items.append(a[name])
        if tag == "input" and a.get("type") in ("submit", "button") and a.get("value"):
            self.items.append(a["value"])

    def handle_endtag(self, tag):
        if self._other:
            if tag == self._other[0]:
                depth = self._other[1] - 1
                self._other = (tag, depth) if depth else None
            return
        if tag in ("script", "style", "code", "textarea", "pre") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and not self._other and data.strip():
            self.items.append(data.strip())


def data_vocabulary(folder: Path) -> tuple[set[str], set[str]]:
    """Latin words and CJK runs of every text the data folder's databases hold."""
    latin: set[str] = set()
    cjk: set[str] = set()
    for name in ("linli.sqlite", "telemetry.sqlite"):
        db = sqlite3.connect(f"file:{folder / name}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        if isinstance(value, str):
                            latin.update(LATIN_WORD.findall(value))
                            cjk.update(CJK_RUN.findall(value))
        finally:
            db.close()
    return latin, cjk


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("languages")
    data = work / "data"
    run("demo", "--data", str(data))
    for role in ROLES:
        run("user", "password", "--data", str(data), "--username", role, "--password-stdin", stdin=PASSWORD + "\n")
    node = Node(data).start()
    yield SimpleNamespace(url=node.url, data=data, node=node)
    assert node.stop() == 0, node.log.read_text()


@pytest.fixture(scope="module")
def server(site):
    return SimpleNamespace(base_url=site.url, workdir=site.data.parent)


def signed_in(site, username: str) -> requests.Session:
    session = requests.Session()
    r = session.post(site.url + "/login", data={"username": username, "password": PASSWORD}, allow_redirects=False, timeout=10)
    assert r.status_code == 302, f"{username} could not sign in: {r.status_code}"
    return session


def shape(path: str) -> str:
    """A path with its ids put aside: pages of one shape come from one template."""
    return re.sub(r"/[0-9A-Za-z_-]{16,}", "/{id}", path)


def walk(site, session: requests.Session) -> list[str]:
    """Same-site console and portal pages reachable from the first page, breadth first."""
    first = session.get(site.url + "/", timeout=10)
    start = urlsplit(first.url).path
    seen: set[str] = set()
    shapes: dict[str, int] = {}
    queue = deque([start])
    pages: list[str] = []
    while queue and len(pages) < PAGES_PER_ROLE:
        target = queue.popleft()
        if target in seen:
            continue
        seen.add(target)
        key = shape(urlsplit(target).path)
        if shapes.get(key, 0) >= SAME_SHAPE:
            continue
        r = session.get(site.url + target, headers={"Accept-Language": "zh-CN"}, timeout=10)
        if r.status_code != 200 or not r.headers.get("Content-Type", "").startswith("text/html"):
            continue
        shapes[key] = shapes.get(key, 0) + 1
        pages.append(target)
        parser = VisibleText()
        parser.feed(r.text)
        for href in parser.links:
            url = urlsplit(urljoin(site.url + target, href))
            if url.netloc != urlsplit(site.url).netloc:
                continue
            if not (url.path.startswith("/console") or url.path.startswith("/app")):
                continue
            if "export" in url.path or url.path.endswith(".csv"):
                continue
            queue.append(url.path + ("?" + url.query if url.query else ""))
    return pages


def foreign_words(text: str, language: str, latin: set[str], cjk: set[str]) -> list[str]:
    if language == "zh-CN":
        return [w for w in LATIN_WORD.findall(text) if w not in ALLOWED_LATIN and w not in latin]
    runs = []
    for run_ in CJK_RUN.findall(text):
        if all(c in CJK_PUNCTUATION for c in run_) or run_ in cjk:
            continue
        # A run may join data with data ("1号楼1单元" shows as runs of each); all parts known is data.
        if any(run_ in known for known in cjk):
            continue
        runs.append(run_)
    return runs


def test_every_page_speaks_one_language(site):
    latin, cjk = data_vocabulary(site.data)
    problems: list[str] = []
    walked = 0
    for role in ROLES:
        session = signed_in(site, role)
        pages = walk(site, session)
        assert pages, f"{role} reached no page"
        walked += len(pages)
        for target in pages:
            for language in ("zh-CN", "en"):
                r = session.get(site.url + target, headers={"Accept-Language": language}, timeout=10)
                assert r.status_code == 200, f"{role} {target} ({language}): {r.status_code}"
                assert f'<html lang="{language}">' in r.text, f"{role} {target}: not marked {language}"
                parser = VisibleText(language)
                parser.feed(r.text)
                for item in parser.items:
                    found = foreign_words(item, language, latin, cjk)
                    if found:
                        problems.append(f"{role} {target} [{language}]: {found} in {item[:120]!r}")
    assert walked >= 30, f"only {walked} pages walked"
    assert not problems, f"{len(problems)} texts in the wrong language:\n" + "\n".join(sorted(set(problems))[:400])


def speaks(language: str):
    """A wait condition: the page now shown is in `language` (the old one may be going away)."""
    def check(d):
        try:
            return d.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
        except Exception:  # noqa: BLE001 (a stale element while the next page loads)
            return False
    return check


def test_the_switch_is_kept_across_pages_and_sign_ins(site, page):
    log_in(page, site.url, "staff", PASSWORD)
    # Staff of one community land in it.
    wait(page).until(lambda d: path_of(d).startswith("/console/c/"))
    landing = path_of(page)
    assert page.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    assert element(page, "#language-switch button").text == "English"
    element(page, "#language-switch button").click()
    wait(page).until(speaks("en"))
    assert path_of(page) == landing, "the switch comes back to the page it was pressed on"
    assert element(page, "#language-switch button").text == "中文"
    page.get(site.url + "/console/account")
    assert page.find_element(By.TAG_NAME, "h1").text == "Account settings"
    # Remembered on the account: a new browser session (no cookie) still speaks English.
    log_in(page, site.url, "staff", PASSWORD)
    wait(page).until(lambda d: path_of(d).startswith("/console/c/"))
    assert page.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    element(page, "#language-switch button").click()
    wait(page).until(speaks("zh-CN"))
