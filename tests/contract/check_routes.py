#!/usr/bin/env python3
"""Checks that the OpenAPI document (Sources/LinliServer/Resources/openapi.yaml with each module's
Sources/*/openapi.yaml, merged as the server merges them) describes exactly the routes the server registers.

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


# The modules' parts of the document, in the order the assembly adds them (Sources/LinliServer/Assembly.swift).
PARTS = (
    "LinliHTTP", "LinliCommunity", "LinliHouseholdImport", "LinliDevices", "LinliLinkage", "LinliWorkOrders", "LinliMessaging",
)


def _sections(text: str) -> list[list]:
    sections: list[list] = [["", []]]
    for line in text.split("\n"):
        if line[:1].isalpha() and line.endswith(":"):
            sections.append([line[:-1], []])
        else:
            sections[-1][1].append(line)
    return sections


def _subsections(body: list[str]) -> list[list]:
    subs: list[list] = [["", []]]
    for line in body:
        if line.startswith("  ") and not line.startswith("   ") and line.endswith(":"):
            subs.append([line[2:-1], []])
        else:
            subs[-1][1].append(line)
    return subs


def assemble(root: Path) -> str:
    """The document as the server serves it: the base with every module's part, merged by lines the
    way OpenAPIDocument.assemble (Sources/LinliHTTP/OpenAPIDocument.swift) does; a path or component
    named twice is an error."""
    base = (root / "Sources/LinliServer/Resources/openapi.yaml").read_text(encoding="utf-8")
    sections = _sections(base)
    paths = next(s for s in sections if s[0] == "paths")
    components = next(s for s in sections if s[0] == "components")
    subs = _subsections(components[1])
    path_keys = {l for l in paths[1] if l.startswith("  /") and l.endswith(":")}
    entry = lambda l: l.startswith("    ") and not l.startswith("     ") and l.endswith(":") and not l.startswith("    #")
    component_keys = {sub[0] + "/" + l for sub in subs for l in sub[1] if entry(l)}
    for name in PARTS:
        for key, body in _sections((root / "Sources" / name / "openapi.yaml").read_text(encoding="utf-8")):
            if key == "paths":
                for l in body:
                    if l.startswith("  /") and l.endswith(":"):
                        if l in path_keys:
                            raise SystemExit(f"openapi: {name} describes{l} again")
                        path_keys.add(l)
                paths[1] += body
            elif key == "components":
                for sub_key, sub_body in _subsections(body):
                    for l in sub_body:
                        if entry(l):
                            if sub_key + "/" + l in component_keys:
                                raise SystemExit(f"openapi: {name} defines {sub_key}{l} again")
                            component_keys.add(sub_key + "/" + l)
                    found = next((s for s in subs if s[0] == sub_key), None)
                    if found:
                        found[1] += sub_body
                    else:
                        subs.append([sub_key, list(sub_body)])
            elif key:
                raise SystemExit(f"openapi: {name} may hold only paths and components, not {key}")
    components[1] = [l for s in subs for l in ([f"  {s[0]}:"] if s[0] else []) + s[1]]
    text = "\n".join(l for s in sections for l in ([f"{s[0]}:"] if s[0] else []) + s[1])
    return text.rstrip("\n") + "\n"


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
    text = assemble(root)
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
