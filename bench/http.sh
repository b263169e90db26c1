#!/usr/bin/env bash
# HTTP throughput and latency of a Linli server on the demo community, measured with wrk.
#
# Usage: bench/http.sh [--build]
#
#   LINLI_BIN   binary to measure (default .build/release/linli, relative to the repo root)
#   DURATION    wrk duration per endpoint (default 15s)
#   WARMUP      wrk warm-up per endpoint before measuring, 0 to skip (default 2s)
#   --build     run `swift build -c release` first if the binary is missing
#
# The script seeds a fresh data folder (`linli demo`), creates a platform admin
# `bench` and an API token for it, starts `linli serve` on a free loopback port
# and runs wrk (2 threads, 32 connections, --latency) against:
#   /healthz                                           (the floor: no data, no auth work)
#   /api/v1/communities/{id}/households?limit=50       (a list page)
#   /api/v1/communities/{id}/people?q=王&limit=20      (a search)
# then the same two and the people listing (/people?limit=50) again with
# Cache-Control: no-cache, which bypasses Linli's response cache so that every
# request reads the database; every request carrying the bearer token. It prints a markdown table of
# requests/s, p50 and p99 latency and each endpoint's throughput relative to
# /healthz. The server is stopped and the temporary folder removed on exit.
#
# wrk and the server share the machine: on a small box the numbers say more
# about relative cost between endpoints than about absolute capacity.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD

THREADS=2
CONNECTIONS=32
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-2s}

build=false
for arg in "$@"; do
    case "$arg" in
        --build) build=true ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

die() { echo "bench/http.sh: $*" >&2; exit 1; }

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed (Debian: apt-get install wrk curl python3)"
done

LINLI_BIN=${LINLI_BIN:-.build/release/linli}
case "$LINLI_BIN" in /*) ;; *) LINLI_BIN="$REPO_ROOT/$LINLI_BIN" ;; esac
if [ ! -x "$LINLI_BIN" ]; then
    $build || die "$LINLI_BIN does not exist; build it (swift build -c release), set LINLI_BIN, or pass --build"
    echo "== swift build -c release"
    swift build -c release
    [ -x "$LINLI_BIN" ] || die "$LINLI_BIN still missing after swift build -c release"
fi

# --- a fresh data folder, torn down with the server on any exit ----------------

work=$(mktemp -d "${TMPDIR:-/tmp}/linli-bench.XXXXXX")
data="$work/data"
server_pid=""

cleanup() {
    local status=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        # Give it 10 s to shut down cleanly, then insist.
        for _ in $(seq 1 40); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
        echo "--- server log (last 50 lines) ---" >&2
        tail -n 50 "$work/server.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== seeding demo data in $data"
"$LINLI_BIN" demo --data "$data" >"$work/demo.log" 2>&1 || { cat "$work/demo.log" >&2; die "linli demo failed"; }

password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
printf '%s\n' "$password" |
    "$LINLI_BIN" user create --data "$data" --username bench --display-name "Benchmark" \
        --role platform_admin --password-stdin >"$work/user.log" 2>&1 ||
    { cat "$work/user.log" >&2; die "linli user create failed"; }

# The token is alone on the last line of stdout.
token=$("$LINLI_BIN" token create --data "$data" --username bench --name bench 2>"$work/token.err" | tail -n 1 | tr -d '[:space:]') ||
    { cat "$work/token.err" >&2; die "linli token create failed"; }
[ -n "$token" ] || die "linli token create printed no token"
auth="Authorization: Bearer $token"

# --- the server ----------------------------------------------------------------

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
echo "== starting linli serve on $base"
"$LINLI_BIN" serve --data "$data" --http "127.0.0.1:$port" --mqtt off --log-level warning >"$work/server.log" 2>&1 &
server_pid=$!

ready=false
for _ in $(seq 1 240); do   # 60 s
    kill -0 "$server_pid" 2>/dev/null || die "linli serve exited before it was ready"
    if curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; then ready=true; break; fi
    sleep 0.25
done
$ready || die "$base/readyz did not answer 200 within 60 s"

community_id=$(curl -fsS -H "$auth" "$base/api/v1/communities" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])') ||
    die "could not read a community id from GET /api/v1/communities"
query=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("王"))')

paths=(
    "/healthz"
    "/api/v1/communities/$community_id/households?limit=50"
    "/api/v1/communities/$community_id/people?q=$query&limit=20"
    "/api/v1/communities/$community_id/households?limit=50"
    "/api/v1/communities/$community_id/people?limit=50"
    "/api/v1/communities/$community_id/people?q=$query&limit=20"
)
# Shown in the table with the id elided and the query readable.
labels=(
    "/healthz"
    "/api/v1/communities/{id}/households?limit=50"
    "/api/v1/communities/{id}/people?q=王&limit=20"
    "/api/v1/communities/{id}/households?limit=50 (no-cache)"
    "/api/v1/communities/{id}/people?limit=50 (no-cache)"
    "/api/v1/communities/{id}/people?q=王&limit=20 (no-cache)"
)
# The last three bypass Linli's response cache (Cache-Control: no-cache): every request reads the database.
cache_headers=("" "" "" "Cache-Control: no-cache" "Cache-Control: no-cache" "Cache-Control: no-cache")

# Every endpoint must answer 200 before it is worth timing: a fast 401 is no result.
for path in "${paths[@]}"; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "$auth" "$base$path")
    [ "$code" = 200 ] || die "GET $path answered $code, not 200"
done

# --- measurements --------------------------------------------------------------

echo "== wrk: $THREADS threads, $CONNECTIONS connections, $DURATION per endpoint (warm-up $WARMUP)"
for i in "${!paths[@]}"; do
    url="$base${paths[$i]}"
    headers=(-H "$auth")
    if [ -n "${cache_headers[$i]}" ]; then headers+=(-H "${cache_headers[$i]}"); fi
    if [ "$WARMUP" != 0 ]; then
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" "${headers[@]}" "$url" >/dev/null
    fi
    echo "-- ${labels[$i]}"
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency "${headers[@]}" "$url" | tee "$work/wrk-$i.txt"
done

kill -0 "$server_pid" 2>/dev/null || die "linli serve died during the benchmark"

# --- report --------------------------------------------------------------------

echo
echo "## Linli HTTP benchmark"
echo
echo "$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown-commit), $(basename "$LINLI_BIN") at $LINLI_BIN, $(nproc) CPUs, wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
echo
python3 - "$work" "${labels[@]}" <<'PY'
import re
import sys
from pathlib import Path

work = Path(sys.argv[1])
labels = sys.argv[2:]


def parse(text):
    """Requests/s, p50, p99 and failed requests from wrk --latency output."""
    def find(pattern):
        m = re.search(pattern, text, re.MULTILINE)
        return m.group(1) if m else None

    rps = find(r"^Requests/sec:\s+([\d.]+)")
    failures = int(find(r"Non-2xx or 3xx responses:\s+(\d+)") or 0)
    socket = find(r"Socket errors:\s+(.*)$")
    if socket:
        failures += sum(int(n) for n in re.findall(r"\d+", socket))
    return {
        "rps": float(rps) if rps else None,
        "p50": find(r"^\s+50%\s+(\S+)") or "?",
        "p99": find(r"^\s+99%\s+(\S+)") or "?",
        "failures": failures,
    }


results = [parse((work / f"wrk-{i}.txt").read_text()) for i in range(len(labels))]
floor = results[0]["rps"]

print("| endpoint | requests/s | p50 | p99 | vs /healthz |")
print("|---|---:|---:|---:|---:|")
for label, r in zip(labels, results):
    rps = f"{r['rps']:,.0f}" if r["rps"] is not None else "?"
    ratio = f"{r['rps'] / floor:.2f}×" if r["rps"] and floor else "?"
    print(f"| `{label}` | {rps} | {r['p50']} | {r['p99']} | {ratio} |")

bad = [(label, r["failures"]) for label, r in zip(labels, results) if r["failures"] or r["rps"] is None]
if bad:
    print()
    for label, n in bad:
        print(f"**warning:** `{label}`: {n} failed requests (non-2xx/3xx or socket errors) or unreadable wrk output")
    sys.exit(1)
PY
