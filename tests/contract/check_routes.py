#!/usr/bin/env python3
"""Checks that Resources/openapi.yaml describes exactly the routes the server registers.

Routes come from the sources:
  - every `api.get/post/patch/put/delete("...")` in each module's Sources/*/*API.swift, under /api/v1,
    with `:name` path parameters written `{name}`;
  - every `router.get/post/...("/...")` in Sources/LinliServer/Application+build.swift
    (/healthz, /readyz, /metrics, /api/v1/openapi.yaml, /api/docs) and in the modules' Sources/*/*Module.swift
    (/ota/{token}).

Operations come from the `paths` of openapi.yaml. Any route missing from the document, or any operation
the server does not register, is listed and the script exits 1. It also checks that every operation has
a unique operationId and a `summary` line where the /api/docs page looks for it.

Usage: python3 tests/contract/check_routes.py [REPO_ROOT]
"""

import re
import sys
from pathlib import Path

import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def swift_routes(root: Path) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    # Each module's API.swift and its siblings (DevicesAPI.swift, …) register routes on `api`.
    api = "\n".join(p.read_text(encoding="utf-8") for p in sorted((root / "Sources").glob("*/*API.swift")))
    for method, path in re.findall(r'\bapi\.(get|post|patch|put|delete)\(\s*"([^"]*)"', api):
        full = "/api/v1/" + path.strip("/") if path.strip("/") else "/api/v1"
        routes.add((method.upper(), re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", full)))
    # The assembly's own routes (/healthz, …) and those a module adds outside /api/v1 (/ota/{token}).
    build = "\n".join(
        p.read_text(encoding="utf-8")
        for p in [root / "Sources/LinliServer/Application+build.swift", *sorted((root / "Sources").glob("*/*Module.swift"))]
    )
    for method, path in re.findall(r'\brouter\.(get|post|patch|put|delete)\(\s*"(/[^"]*)"', build):
        routes.add((method.upper(), re.sub(r":([A-Za-z_][A-Za-z0-9_]*)", r"{\1}", path)))
    return routes


def document_operations(document: dict) -> set[tuple[str, str]]:
    operations: set[tuple[str, str]] = set()
    for path, item in (document.get("paths") or {}).items():
        for method in item or {}:
            if method in METHODS:
                operations.add((method.upper(), path))
    return operations


def docs_page_operations(text: str) -> list[tuple[str, str, str]]:
    """The operations the /api/docs page finds, mirroring Pages.apiReference() line by line."""
    found = []
    in_paths, path, method = False, "", ""
    for line in text.split("\n"):
        if line == "paths:":
            in_paths = True
            continue
        if in_paths and not line.startswith(" ") and line:
            in_paths = False
        if not in_paths:
            continue
        if line.startswith("  /") and line.endswith(":"):
            path = line[2:-1]
        trimmed = line.strip()
        if line.startswith("    ") and not line.startswith("     ") and trimmed in ("get:", "post:", "patch:", "put:", "delete:"):
            method = trimmed[:-1]
        if line.startswith("      summary:") and method:
            found.append((method.upper(), path, trimmed[len("summary:"):].strip()))
            method = ""
    return found


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    spec_path = root / "Sources/LinliServer/Resources/openapi.yaml"
    text = spec_path.read_text(encoding="utf-8")
    document = yaml.safe_load(text)

    routes = swift_routes(root)
    operations = document_operations(document)
    failures: list[str] = []

    for method, path in sorted(routes - operations, key=lambda r: (r[1], r[0])):
        failures.append(f"registered by the server but missing from openapi.yaml: {method} {path}")
    for method, path in sorted(operations - routes, key=lambda r: (r[1], r[0])):
        failures.append(f"in openapi.yaml but not registered by the server: {method} {path}")

    seen: dict[str, str] = {}
    for path, item in (document.get("paths") or {}).items():
        for method, op in (item or {}).items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            op_id = (op or {}).get("operationId")
            if not op_id:
                failures.append(f"no operationId: {where}")
            elif op_id in seen:
                failures.append(f"operationId {op_id!r} used by both {seen[op_id]} and {where}")
            else:
                seen[op_id] = where
            if not (op or {}).get("summary"):
                failures.append(f"no summary: {where}")

    listed = {(m, p) for m, p, s in docs_page_operations(text) if s}
    for method, path in sorted(operations - listed, key=lambda r: (r[1], r[0])):
        failures.append(f"the /api/docs page would not list it (no `      summary:` line under the method): {method} {path}")

    if failures:
        print(f"openapi.yaml does not match the server's routes ({len(failures)} problems):")
        for failure in failures:
            print("  - " + failure)
        return 1
    print(f"openapi.yaml matches the server: {len(routes)} routes, {len(operations)} operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
