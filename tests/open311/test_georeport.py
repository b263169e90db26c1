"""Open311 GeoReport v2, checked with a small client written from the specification
(wiki.open311.org/GeoReport_v2): discovery, services, a service definition, POST requests with an
API key, GET requests with its filters, one request, tokens; each in JSON and in XML, errors too."""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from test_server_process import Node, run  # noqa: E402


class GeoReport:
    """The client: every call returns parsed data whatever the format, as the spec's documents are shaped."""

    def __init__(self, base: str, fmt: str, jurisdiction: str, api_key: str | None = None):
        self.base, self.fmt, self.jurisdiction, self.api_key = base.rstrip("/") + "/", fmt, jurisdiction, api_key

    def _parse(self, r: requests.Response):
        if self.fmt == "json":
            assert r.headers["Content-Type"].startswith("application/json"), r.headers
            return r.json()
        assert r.headers["Content-Type"].startswith("text/xml"), r.headers
        root = ET.fromstring(r.content)
        if root.tag == "discovery":
            return {"changeset": root.findtext("changeset"), "key_service": root.findtext("key_service"),
                    "jurisdictions": [{"jurisdiction_id": j.findtext("jurisdiction_id"), "name": j.findtext("name")}
                                      for j in root.find("jurisdictions")],
                    "endpoints": [
                {"url": e.findtext("url"), "specification": e.findtext("specification"), "formats": [f.text for f in e.find("formats")]}
                for e in root.find("endpoints")]}
        if root.tag == "service_definition":
            return {"service_code": root.findtext("service_code"), "attributes": list(root.find("attributes"))}
        items = []
        for child in root:
            item = {}
            for field in child:
                item[field.tag] = [k.text for k in field] if len(field) else field.text
            items.append(item)
        return items

    def get(self, path: str, **params):
        params.setdefault("jurisdiction_id", self.jurisdiction)
        r = requests.get(f"{self.base}{path}.{self.fmt}", params=params, timeout=10)
        return r.status_code, self._parse(r)

    def post_request(self, **fields):
        fields.setdefault("jurisdiction_id", self.jurisdiction)
        if self.api_key is not None:
            fields.setdefault("api_key", self.api_key)
        r = requests.post(f"{self.base}requests.{self.fmt}", data=fields, timeout=10)
        return r.status_code, self._parse(r)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("open311") / "data"
    run("demo", "--data", str(data))
    key = run("open311", "key", "--data", str(data), "--name", "城市服务 city app").stdout.strip().splitlines()[-1]
    run("user", "create", "--data", str(data), "--username", "ops", "--role", "platform_admin", "--password-stdin", stdin="operations-password-1\n")
    token = run("token", "create", "--data", str(data), "--username", "ops", "--name", "t").stdout.strip().splitlines()[-1]
    node = Node(data).start()
    headers = {"Authorization": "Bearer " + token}
    community = requests.get(node.url + "/api/v1/communities", headers=headers, timeout=10).json()["items"][0]["id"]
    yield {"url": node.url, "key": key, "community": community, "headers": headers, "data": data}
    assert node.stop() == 0, node.log.read_text()


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_discovery_and_services(site: dict, fmt: str):
    client = GeoReport(site["url"] + "/open311/v2/", fmt, site["community"])
    status, discovery = client.get("discovery")
    assert status == 200 and discovery["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert discovery["endpoints"][0]["url"].endswith("/open311/v2/") and "text/xml" in discovery["endpoints"][0]["formats"]
    assert [j["jurisdiction_id"] for j in discovery["jurisdictions"]] == [site["community"]]
    assert all(j["name"] for j in discovery["jurisdictions"])
    # The command the key service names is the one that makes a key.
    command = discovery["key_service"].split("`")[1]
    assert command.startswith("linli open311 key --name ")
    assert run(*command.split()[1:4], "city hotline", "--data", str(site["data"])).returncode == 0
    # With one community, jurisdiction_id may be left out.
    status, services = client.get("services", jurisdiction_id="")
    assert status == 200 and len(services) == 8
    status, services = client.get("services")
    assert status == 200
    codes = {s["service_code"] for s in services}
    assert {"repair", "noise", "sanitation"} <= codes and len(codes) == 8
    noise = next(s for s in services if s["service_code"] == "noise")
    assert noise["metadata"] in (False, "false") and noise["type"] == "realtime" and noise["service_name"]
    status, definition = client.get("services/noise")
    assert status == 200 and definition["service_code"] == "noise" and definition["attributes"] == []
    status, errors = client.get("services/teleport")
    assert status == 404 and errors[0]["code"] in (404, "404") and errors[0]["description"]
    status, errors = GeoReport(site["url"] + "/open311/v2/", fmt, "no-such-place").get("services")
    assert status == 404


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_reporter_files_and_follows_a_request(site: dict, fmt: str):
    client = GeoReport(site["url"] + "/open311/v2/", fmt, site["community"], site["key"])
    status, created = client.post_request(service_code="sanitation", lat="31.2304", long="121.4737", address_string="3号楼东侧 east of building 3",
                                          description=f"垃圾满溢 overflowing bins ({fmt})", first_name="Lei", last_name="Wang", phone="13800001111",
                                          email="lei@example.org", media_url="https://example.org/bins.jpg")
    assert status == 201, created
    request_id = created[0]["service_request_id"]
    assert created[0]["service_notice"].startswith("No. GD")

    status, found = client.get(f"requests/{request_id}")
    assert status == 200 and len(found) == 1
    req = found[0]
    assert req["service_request_id"] == request_id and req["status"] == "open" and req["service_code"] == "sanitation"
    assert float(req["lat"]) == pytest.approx(31.2304) and float(req["long"]) == pytest.approx(121.4737)
    assert req["address"] == "3号楼东侧 east of building 3" and req["media_url"] == "https://example.org/bins.jpg"
    assert "Wang" not in str(req) and "13800001111" not in str(req), "who reported is not public"
    assert req["requested_datetime"] and req["expected_datetime"]

    # Handled inside Linli: the status and its note show through Open311.
    api = site["url"] + f"/api/v1/work-orders/{request_id}/steps"
    for step in ({"step": "accept"}, {"step": "grab"}, {"step": "resolve", "note": "已清运 cleared"}):
        r = requests.post(api, json=step, headers=site["headers"], timeout=10)
        assert r.status_code == 200, r.text
    status, found = client.get(f"requests/{request_id}")
    assert found[0]["status"] == "closed" and found[0]["status_notes"] == "已清运 cleared"

    # The list and its filters.
    status, listed = client.get("requests", service_request_id=request_id)
    assert [r["service_request_id"] for r in listed] == [request_id]
    status, closed = client.get("requests", status="closed", service_code="sanitation")
    assert request_id in [r["service_request_id"] for r in closed]
    status, still_open = client.get("requests", status="open")
    assert request_id not in [r["service_request_id"] for r in still_open]
    status, none = client.get("requests", start_date="2000-01-01T00:00:00Z", end_date="2000-01-02T00:00:00Z")
    assert status == 200 and none == []
    status, token = client.get(f"tokens/{request_id}")
    assert status == 200 and token[0]["service_request_id"] == request_id


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_bad_requests_get_open311_errors(site: dict, fmt: str):
    client = GeoReport(site["url"] + "/open311/v2/", fmt, site["community"], site["key"])
    status, errors = GeoReport(site["url"] + "/open311/v2/", fmt, site["community"], "wrong-key").post_request(service_code="noise", address_string="x")
    assert status == 403 and "api_key" in errors[0]["description"]
    status, errors = GeoReport(site["url"] + "/open311/v2/", fmt, site["community"]).post_request(service_code="noise", address_string="x")
    assert status == 403
    status, errors = client.post_request(service_code="teleport", address_string="x")
    assert status == 400 and "service_code" in errors[0]["description"]
    status, errors = client.post_request(service_code="noise")
    assert status == 400 and "location" in errors[0]["description"]
    status, errors = client.post_request(service_code="noise", lat="91", long="0")
    assert status == 400
    status, errors = client.post_request(service_code="noise", address_string="x", jurisdiction_id="another-place")
    assert status == 403
    status, errors = client.get("requests", start_date="yesterday")
    assert status == 400 and "start_date" in errors[0]["description"]
    status, errors = client.get("requests/no-such-request")
    assert status == 404
    r = requests.get(site["url"] + "/open311/v2/services.csv", params={"jurisdiction_id": site["community"]}, timeout=10)
    assert r.status_code == 404 and r.json()[0]["code"] == 404


def test_internal_reports_are_not_public(site: dict):
    r = requests.post(site["url"] + f"/api/v1/communities/{site['community']}/work-orders", headers=site["headers"],
                      json={"category": "repair", "title": "内部工单 internal"}, timeout=10)
    assert r.status_code == 201
    client = GeoReport(site["url"] + "/open311/v2/", "json", site["community"])
    status, listed = client.get("requests")
    assert r.json()["id"] not in [x["service_request_id"] for x in listed]
    status, _ = client.get(f"requests/{r.json()['id']}")
    assert status == 404
