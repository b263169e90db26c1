#!/usr/bin/env bash
# MQTT throughput, latency and connection capacity of a Linli server, with Mosquitto beside it.
#
# Usage: bench/mqtt.sh
#
# Builds nothing: run `swift build -c release` first. Environment:
#
#   LINLI_BIN         binary to measure (default .build/release/linli, relative to the repo root)
#   DEVICES           devices (connections) of the throughput run (default 1000)
#   RATE              property posts per second offered, all devices together (default 60000: above
#                     the 50,000/s target, so that what is acknowledged shows what the broker can
#                     take rather than where the pacer stops; a device whose window is full skips
#                     its turn, so the rate reached is below the rate offered)
#   QOS               QoS of the posts, 0 or 1 (default 1)
#   INFLIGHT          QoS 1 posts per device awaiting PUBACK at most (default 16)
#   DURATION          seconds measured per throughput run (default 30)
#   WARMUP            seconds of load before measuring (default 5)
#   CONNECTIONS       connections of the connection test (default 20000)
#   GENERATORS        generator processes the connection test is split over (default 2)
#   HOLD              seconds the connection test holds its connections (default 40)
#   PHASES            which phases to run, space-separated (default "throughput mosquitto connections";
#                     also "relay", "idle" and "connect")
#   RELAY_SUBSCRIBERS persistent QoS 1 subscribers of the relay phase (default 10)
#   RELAY_RATE        messages per second the relay phase's publisher offers (default 5000)
#   RELAY_MESSAGES    messages published while the relay subscribers are away (default 10000)
#   IDLE_CONNECTIONS  connections of the idle phase (default 5000)
#   CONNECTS          sign-ins of one integration account in the connect phase (default 5000)
#   COLD_ACCOUNTS     integration accounts that sign in once each first, cold (default 32)
#   PREFILL_POSTS     property posts written into telemetry with `linli bench telemetry` before the
#                     server starts (default 0), to measure a file that already holds history
#   MOSQUITTO_BIN     the Mosquitto broker (default: mosquitto on PATH, or /usr/sbin/mosquitto)
#
# What it does: a fresh data folder with the demo community (`linli demo`); the bench devices
# `bench-b-{i}` registered in it (`linli bench mqtt --provision-only`, before the server starts, so
# no registration write competes with the measurement); `linli serve` on free loopback ports with
# `--log-level warning`; then
#   throughput   DEVICES Alink devices post properties at RATE (QoS 1: every PUBACK follows the
#                post's commit to telemetry.sqlite); publish → PUBACK latency, the server's memory
#                and CPU, and linli_telemetry_commit_seconds from /metrics;
#   mosquitto    the same generator with --plain (anonymous clients on bench/{i}) against Mosquitto
#                on another port, with one subscriber on bench/# counting what is relayed;
#   connections  CONNECTIONS devices connect and hold, split over GENERATORS processes (each
#                process may open only `ulimit -n` sockets); the server's memory and open files
#                are read once every generator has finished connecting;
#   relay        `linli bench relay`: one publisher, RELAY_SUBSCRIBERS persistent QoS 1 subscribers
#                (clean session 0), online (RELAY_RATE offered; publish → delivery latency) and
#                offline then back (RELAY_MESSAGES kept, then drained), over MQTT 3.1.1 and 5, on
#                Linli (an integration account; kept in the database before PUBACK) and on
#                Mosquitto with `persistence true` (saved to disk only every autosave_interval);
#   idle         IDLE_CONNECTIONS clients connect and hold, 3.1.1 and then 5, each on a Linli
#                server and a Mosquitto started for it (memory a busy earlier phase left in the
#                allocator would otherwise hide the connections'): RSS growth per idle connection;
#   connect      sign-ins 64 at a time, CONNECT → CONNACK → DISCONNECT: COLD_ACCOUNTS integration
#                accounts once each (a bcrypt check each), then one account CONNECTS times (the
#                verified-credential cache), then DEVICES Alink devices (HMAC); Mosquitto with a
#                password file holding the same accounts (PBKDF2-SHA512, checked at every CONNECT).
# It prints each run's table as it goes, then a markdown summary. Every process it started is
# stopped and the temporary folder removed on exit.
#
# The generator runs on the same machine as the server: on a small box they share the cores, so
# the numbers are those of server plus load generator together.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD

DEVICES=${DEVICES:-1000}
RATE=${RATE:-60000}
QOS=${QOS:-1}
INFLIGHT=${INFLIGHT:-16}
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-20000}
GENERATORS=${GENERATORS:-2}
HOLD=${HOLD:-40}
PHASES=${PHASES:-throughput mosquitto connections}
PREFILL_POSTS=${PREFILL_POSTS:-0}
RELAY_SUBSCRIBERS=${RELAY_SUBSCRIBERS:-10}
RELAY_RATE=${RELAY_RATE:-5000}
RELAY_MESSAGES=${RELAY_MESSAGES:-10000}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-5000}
CONNECTS=${CONNECTS:-5000}
COLD_ACCOUNTS=${COLD_ACCOUNTS:-32}
RUN_ID=b

for arg in "$@"; do
    case "$arg" in
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

die() { echo "bench/mqtt.sh: $*" >&2; exit 1; }
has_phase() { case " $PHASES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

for tool in curl python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed (Debian: apt-get install curl python3)"
done

LINLI_BIN=${LINLI_BIN:-.build/release/linli}
case "$LINLI_BIN" in /*) ;; *) LINLI_BIN="$REPO_ROOT/$LINLI_BIN" ;; esac
[ -x "$LINLI_BIN" ] || die "$LINLI_BIN does not exist; build it first (swift build -c release) or set LINLI_BIN"

if has_phase mosquitto || has_phase relay || has_phase idle || has_phase connect; then
    MOSQUITTO_BIN=${MOSQUITTO_BIN:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
    [ -x "$MOSQUITTO_BIN" ] || die "mosquitto is not installed (Debian: apt-get install mosquitto), or drop it from PHASES"
fi

# Each connection is a file descriptor, in the server and in the generator alike.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
open_files=$(ulimit -n)

# --- processes and files, torn down on any exit ---------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/linli-mqtt-bench.XXXXXX")
data="$work/data"
pids=()   # everything started in the background, stopped in reverse order

stop() {  # stop PID: TERM, 10 s to finish, then KILL
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    for (( i=${#pids[@]}-1; i>=0; i-- )); do stop "${pids[$i]}"; done
    if [ "$status" -ne 0 ]; then
        for log in "$work"/server.log "$work"/mosquitto.log; do
            [ -s "$log" ] || continue
            echo "--- $(basename "$log") (last 30 lines) ---" >&2
            tail -n 30 "$log" >&2
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# Waits until something accepts TCP connections on 127.0.0.1:PORT, while PID lives.
wait_port() {
    local port=$1 pid=$2 what=$3
    for _ in $(seq 1 240); do   # 60 s
        kill -0 "$pid" 2>/dev/null || die "$what exited before it listened on port $port"
        if python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null; then return 0; fi
        sleep 0.25
    done
    die "$what did not listen on port $port within 60 s"
}

load() { uptime | sed 's/.*load average: /load average /'; }

# --- data: the demo community and the bench devices -----------------------------

needed_devices=$DEVICES
if has_phase connections && [ "$CONNECTIONS" -gt "$needed_devices" ]; then needed_devices=$CONNECTIONS; fi

echo "== seeding demo data in $data"
"$LINLI_BIN" demo --data "$data" >"$work/demo.log" 2>&1 || { cat "$work/demo.log" >&2; die "linli demo failed"; }
echo "== registering $needed_devices bench devices"
"$LINLI_BIN" bench mqtt --data "$data" --run-id "$RUN_ID" --devices "$needed_devices" --provision-only \
    >"$work/provision.log" 2>&1 || { cat "$work/provision.log" >&2; die "provisioning failed"; }
tail -n 1 "$work/provision.log"
if [ "$PREFILL_POSTS" -gt 0 ]; then
    echo "== writing $PREFILL_POSTS posts of history first ($(load))"
    "$LINLI_BIN" bench telemetry --data "$data" --posts "$PREFILL_POSTS" >"$work/prefill.log" 2>&1 ||
        { cat "$work/prefill.log" >&2; die "prefilling telemetry failed"; }
    tail -n 1 "$work/prefill.log"
fi

# The relay and idle phases sign in with an integration account.
relay_password=relay-bench-password-1
if has_phase relay || has_phase idle || has_phase connect; then
    "$LINLI_BIN" mqtt-account create --data "$data" --username bench-relay --description "bench/mqtt.sh relay" \
        --publish 'relay/#' --subscribe 'relay/#' --password-stdin <<<"$relay_password" >"$work/account.log" 2>&1 ||
        { cat "$work/account.log" >&2; die "creating the relay account failed"; }
fi
if has_phase connect; then
    echo "== creating $COLD_ACCOUNTS integration accounts for the cold sign-ins"
    for (( i=0; i<COLD_ACCOUNTS; i++ )); do
        "$LINLI_BIN" mqtt-account create --data "$data" --username "bench-relay-$i" --description "bench/mqtt.sh connect" \
            --publish 'relay/#' --subscribe 'relay/#' --password-stdin <<<"$relay_password" >"$work/account.log" 2>&1 ||
            { cat "$work/account.log" >&2; die "creating account bench-relay-$i failed"; }
    done
fi

# --- the server -----------------------------------------------------------------

# Starts `linli serve` on the data folder, on free ports; sets http_port, mqtt_port, server_pid.
start_linli() {
    http_port=$(free_port)
    mqtt_port=$(free_port)
    echo "== starting linli serve: HTTP 127.0.0.1:$http_port, MQTT 127.0.0.1:$mqtt_port (open files: $open_files)"
    # The relay publisher posts above the per-client rate a device gets (1,000/s by default).
    LINLI_MQTT_PUBLISH_RATE=1000000 "$LINLI_BIN" serve --data "$data" --http "127.0.0.1:$http_port" \
        --mqtt "127.0.0.1:$mqtt_port" --mqtt-tls off --log-level warning >>"$work/server.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    local ready=false
    for _ in $(seq 1 240); do   # 60 s
        kill -0 "$server_pid" 2>/dev/null || die "linli serve exited before it was ready"
        if curl -fsS -o /dev/null "http://127.0.0.1:$http_port/readyz" 2>/dev/null; then ready=true; break; fi
        sleep 0.25
    done
    $ready || die "http://127.0.0.1:$http_port/readyz did not answer 200 within 60 s"
    wait_port "$mqtt_port" "$server_pid" "linli serve"
}
start_linli

bench() { "$LINLI_BIN" bench mqtt "$@"; }
server_alive() { kill -0 "$server_pid" 2>/dev/null || die "linli serve died during the $1 phase (see its log)"; }

# --- throughput -------------------------------------------------------------------

if has_phase throughput; then
    echo
    echo "== throughput: $DEVICES devices, $RATE posts/s, QoS $QOS, ${WARMUP}+${DURATION} s ($(load))"
    bench --data "$data" --mqtt "127.0.0.1:$mqtt_port" --run-id "$RUN_ID" --devices "$DEVICES" --rate "$RATE" --qos "$QOS" \
        --inflight "$INFLIGHT" --duration "$DURATION" --warmup "$WARMUP" --server-pid "$server_pid" \
        --metrics-url "http://127.0.0.1:$http_port/metrics" >"$work/throughput.out" 2>"$work/throughput.err" ||
        { cat "$work/throughput.err" >&2; die "the throughput run failed"; }
    sed '$d' "$work/throughput.out"
    tail -n 1 "$work/throughput.out" >"$work/throughput.json"
    echo "(load after: $(load))"
    server_alive throughput
fi

# --- Mosquitto, same generator, one subscriber --------------------------------------

if has_phase mosquitto; then
    mosquitto_port=$(free_port)
    cat >"$work/mosquitto.conf" <<EOF
listener $mosquitto_port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $work/mosquitto.log
log_type error
log_type warning
# One subscriber receives every post: let it have a window as wide as the devices' together,
# and a queue that does not drop under a burst.
max_inflight_messages 1000
max_queued_messages 100000
EOF
    echo
    echo "== mosquitto $("$MOSQUITTO_BIN" -h 2>/dev/null | head -n 1 | sed 's/^mosquitto version //') on 127.0.0.1:$mosquitto_port"
    "$MOSQUITTO_BIN" -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>&1 &
    mosquitto_pid=$!
    pids+=("$mosquitto_pid")
    wait_port "$mosquitto_port" "$mosquitto_pid" "mosquitto"
    echo "== mosquitto throughput: $DEVICES clients, $RATE posts/s, QoS $QOS, subscriber on bench/# ($(load))"
    bench --plain --mqtt "127.0.0.1:$mosquitto_port" --run-id "$RUN_ID" --devices "$DEVICES" --rate "$RATE" --qos "$QOS" \
        --inflight "$INFLIGHT" --duration "$DURATION" --warmup "$WARMUP" --server-pid "$mosquitto_pid" \
        --subscribe-filter 'bench/#' >"$work/mosquitto-run.out" 2>"$work/mosquitto-run.err" ||
        { cat "$work/mosquitto-run.err" >&2; die "the Mosquitto run failed"; }
    sed '$d' "$work/mosquitto-run.out"
    tail -n 1 "$work/mosquitto-run.out" >"$work/mosquitto.json"
    echo "(load after: $(load))"
    stop "$mosquitto_pid"
fi

# --- connections held ------------------------------------------------------------------

if has_phase connections; then
    echo
    per=$(( (CONNECTIONS + GENERATORS - 1) / GENERATORS ))
    echo "== connections: $CONNECTIONS devices over $GENERATORS generators, held ${HOLD} s ($(load))"
    gen_pids=()
    for (( g=0; g<GENERATORS; g++ )); do
        first=$(( g * per ))
        n=$(( CONNECTIONS - first < per ? CONNECTIONS - first : per ))
        [ "$n" -gt 0 ] || break
        bench --data "$data" --mqtt "127.0.0.1:$mqtt_port" --run-id "$RUN_ID" --first-device "$first" --devices "$n" \
            --connect-only --hold "$HOLD" --server-pid "$server_pid" \
            >"$work/connect-$g.out" 2>"$work/connect-$g.err" &
        gen_pids+=("$!")
        pids+=("$!")
    done
    # Read the server once every generator has finished connecting (each says "connected …").
    sampled=false
    while :; do
        done_count=0
        for (( g=0; g<${#gen_pids[@]}; g++ )); do
            if grep -q '^connected ' "$work/connect-$g.err" 2>/dev/null; then done_count=$((done_count + 1)); fi
        done
        if [ "$done_count" -eq "${#gen_pids[@]}" ]; then
            sleep 2   # let the last sign-ins' presence writes settle
            python3 - "$server_pid" >"$work/connect-server.json" <<'PY'
import json, os, sys
pid = sys.argv[1]
status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status") if ":" in line)
kib = lambda key: int(status[key].split()[0])
limit = next(line.split()[3] for line in open(f"/proc/{pid}/limits") if line.startswith("Max open files"))
print(json.dumps({"rssMiB": kib("VmRSS") / 1024, "peakRssMiB": kib("VmHWM") / 1024,
                  "openFiles": len(os.listdir(f"/proc/{pid}/fd")), "openFilesLimit": int(limit)}))
PY
            sampled=true
            break
        fi
        alive=false
        for pid in "${gen_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=true; done
        $alive || break
        server_alive connections
        sleep 0.5
    done
    $sampled || echo "warning: a generator ended before all had connected; no server sample" >&2
    for (( g=0; g<${#gen_pids[@]}; g++ )); do
        wait "${gen_pids[$g]}" || { cat "$work/connect-$g.err" >&2; die "connection generator $g failed"; }
        echo "-- generator $g"
        sed '$d' "$work/connect-$g.out"
        tail -n 1 "$work/connect-$g.out" >"$work/connect-$g.json"
    done
    server_alive connections
    echo "(load after: $(load))"
fi

# --- relay to persistent subscribers, and idle connections, on Linli and Mosquitto --------

relay() { LINLI_BENCH_PASSWORD=$relay_password "$LINLI_BIN" bench relay "$@"; }

# Starts Mosquitto with the given persistence on a free port, anonymous or with a password
# file (third argument); sets mosq_port and mosq_pid.
start_mosquitto() {
    local persistence=$1 name=$2
    mosq_port=$(free_port)
    mkdir -p "$work/$name"
    cat >"$work/$name/mosquitto.conf" <<EOF
listener $mosq_port 127.0.0.1
allow_anonymous true
persistence $persistence
persistence_location $work/$name/
log_dest file $work/$name/mosquitto.log
log_type error
log_type warning
max_inflight_messages 256
max_queued_messages 1000000
# Run as root, Mosquitto 2 becomes user mosquitto, which cannot enter this private temporary
# folder to write its log or read the password file; as anyone else this line does nothing.
user root
EOF
    if [ -n "${3:-}" ]; then
        printf 'allow_anonymous false\npassword_file %s\n' "$3" >>"$work/$name/mosquitto.conf"
        sed -i '/^allow_anonymous true$/d' "$work/$name/mosquitto.conf"
    fi
    "$MOSQUITTO_BIN" -c "$work/$name/mosquitto.conf" >"$work/$name/out" 2>&1 &
    mosq_pid=$!
    pids+=("$mosq_pid")
    wait_port "$mosq_port" "$mosq_pid" "mosquitto"
}

if has_phase relay; then
    for level in 4 5; do
        echo
        echo "== relay, MQTT level $level: 1 → $RELAY_SUBSCRIBERS persistent QoS 1 subscribers, Linli ($(load))"
        relay --mqtt "127.0.0.1:$mqtt_port" --username bench-relay --protocol-level "$level" --run-id "linli-$level" \
            --subscribers "$RELAY_SUBSCRIBERS" --rate "$RELAY_RATE" --messages "$RELAY_MESSAGES" --duration "$DURATION" \
            --warmup "$WARMUP" --server-pid "$server_pid" >"$work/relay-linli-$level.json" 2>"$work/relay-linli-$level.err" ||
            { cat "$work/relay-linli-$level.err" >&2; die "the Linli relay run failed"; }
        cat "$work/relay-linli-$level.json"
        server_alive relay
        start_mosquitto true "mosquitto-relay-$level"
        echo "== relay, MQTT level $level, Mosquitto with persistence true ($(load))"
        relay --mqtt "127.0.0.1:$mosq_port" --protocol-level "$level" --run-id "mosq-$level" \
            --subscribers "$RELAY_SUBSCRIBERS" --rate "$RELAY_RATE" --messages "$RELAY_MESSAGES" --duration "$DURATION" \
            --warmup "$WARMUP" --server-pid "$mosq_pid" >"$work/relay-mosquitto-$level.json" 2>"$work/relay-mosquitto-$level.err" ||
            { cat "$work/relay-mosquitto-$level.err" >&2; die "the Mosquitto relay run failed"; }
        cat "$work/relay-mosquitto-$level.json"
        stop "$mosq_pid"
    done
fi

if has_phase connect; then
    echo
    echo "== connect: $COLD_ACCOUNTS accounts once, then one account $CONNECTS times, Linli ($(load))"
    relay --mqtt "127.0.0.1:$mqtt_port" --username bench-relay --run-id connect --phases connect --concurrency 64 \
        --cold-accounts "$COLD_ACCOUNTS" --connections "$CONNECTS" --server-pid "$server_pid" \
        >"$work/connect-linli.json" 2>"$work/connect-linli.err" ||
        { cat "$work/connect-linli.err" >&2; die "the Linli connect run failed"; }
    cat "$work/connect-linli.json"
    echo "== connect: $DEVICES Alink devices, Linli ($(load))"
    bench --mqtt "127.0.0.1:$mqtt_port" --data "$data" --run-id "$RUN_ID" --devices "$DEVICES" --connect-only --hold 1 \
        >"$work/connect-alink.out" 2>"$work/connect-alink.err" ||
        { cat "$work/connect-alink.err" >&2; die "the Alink connect run failed"; }
    tail -n 1 "$work/connect-alink.out" | tee "$work/connect-alink.json"
    server_alive connect
    passwords="$work/mosquitto-passwords"
    : >"$passwords"
    for user in bench-relay $(seq -f 'bench-relay-%g' 0 $((COLD_ACCOUNTS - 1))); do
        mosquitto_passwd -b "$passwords" "$user" "$relay_password"
    done
    start_mosquitto false mosquitto-connect "$passwords"
    echo "== connect: the same accounts, Mosquitto with a password file ($(load))"
    relay --mqtt "127.0.0.1:$mosq_port" --username bench-relay --run-id connect --phases connect --concurrency 64 \
        --cold-accounts "$COLD_ACCOUNTS" --connections "$CONNECTS" --server-pid "$mosq_pid" \
        >"$work/connect-mosquitto.json" 2>"$work/connect-mosquitto.err" ||
        { cat "$work/connect-mosquitto.err" >&2; die "the Mosquitto connect run failed"; }
    cat "$work/connect-mosquitto.json"
    stop "$mosq_pid"
fi

if has_phase idle; then
    for level in 4 5; do
        echo
        stop "$server_pid"
        start_linli
        echo "== idle: $IDLE_CONNECTIONS connections, MQTT level $level, a Linli server started for it ($(load))"
        relay --mqtt "127.0.0.1:$mqtt_port" --username bench-relay --protocol-level "$level" --run-id "idle-$level" \
            --phases idle --connections "$IDLE_CONNECTIONS" --server-pid "$server_pid" \
            >"$work/idle-linli-$level.json" 2>"$work/idle-linli-$level.err" ||
            { cat "$work/idle-linli-$level.err" >&2; die "the Linli idle run failed"; }
        cat "$work/idle-linli-$level.json"
        server_alive idle
        start_mosquitto false "mosquitto-idle-$level"
        echo "== idle: $IDLE_CONNECTIONS connections, MQTT level $level, Mosquitto ($(load))"
        relay --mqtt "127.0.0.1:$mosq_port" --protocol-level "$level" --run-id "idle-$level" --phases idle \
            --connections "$IDLE_CONNECTIONS" --server-pid "$mosq_pid" \
            >"$work/idle-mosquitto-$level.json" 2>"$work/idle-mosquitto-$level.err" ||
            { cat "$work/idle-mosquitto-$level.err" >&2; die "the Mosquitto idle run failed"; }
        cat "$work/idle-mosquitto-$level.json"
        stop "$mosq_pid"
    done
fi

# --- summary -----------------------------------------------------------------------------

echo
echo "## Linli MQTT benchmark"
echo
echo "$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown-commit), $LINLI_BIN, $(nproc) CPUs, open files $open_files, $(load)"
echo
python3 - "$work" "$RATE" "$CONNECTIONS" <<'PY'
import json
import sys
from pathlib import Path

work, rate, connections = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])


def read(name):
    p = work / name
    return json.loads(p.read_text()) if p.exists() and p.read_text().strip() else None


def n(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


linli, mosq = read("throughput.json"), read("mosquitto.json")
rows = []
for label, r in (("Linli (Alink devices, stored before PUBACK)", linli), ("Mosquitto (anonymous, relayed to 1 subscriber)", mosq)):
    if not r:
        continue
    lat = r.get("latencyMs") or {}
    server = r.get("server") or {}
    rows.append((label, r.get("devices"), r.get("connected"), r.get("targetRate"), r.get("sentPerSecond"), r.get("ackedPerSecond"),
                 r.get("relayedPerSecond"), lat.get("p50"), lat.get("p90"), lat.get("p99"), server.get("rssMiB"), server.get("cpuPercent"),
                 r.get("errors"), r.get("disconnects")))
if rows:
    print("| broker | devices | target/s | sent/s | PUBACKed/s | relayed/s | p50 ms | p90 ms | p99 ms | RSS MiB | CPU % | errors | disconnects |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (label, devices, connected, target, sent, acked, relayed, p50, p90, p99, rss, cpu, errors, disc) in rows:
        print(f"| {label} | {connected}/{devices} | {n(target)} | {n(sent)} | {n(acked)} | {n(relayed)} | {n(p50, 2)} | {n(p90, 2)} | {n(p99, 2)} "
              f"| {n(rss, 1)} | {n(cpu)} | {errors} | {disc} |")
    print()
if linli:
    c = linli.get("telemetryCommit") or {}
    if c.get("commits"):
        per = (linli.get("ackedPerSecond") or 0) * (linli.get("measuredSeconds") or 0) / c["commits"]
        print(f"Telemetry commits (publish → stored is at most publish → PUBACK): {n(c['commits'])} commits, about {n(per)} posts each; "
              f"p50 {n(c.get('p50Ms'), 2)} ms, p99 {n(c.get('p99Ms'), 2)} ms, mean {n(c.get('meanMs'), 2)} ms ({c.get('series')}).")
    acked = linli.get("ackedPerSecond") or linli.get("sentPerSecond") or 0
    met = acked >= 50_000 and (linli.get("errors") or 0) == 0
    print(f"Target ≥ 50,000 posts/s at QoS 1 from 1,000 devices: {'met' if met else 'not met'} ({n(acked)}/s acknowledged).")
if linli and mosq:
    a = linli.get("ackedPerSecond") or linli.get("sentPerSecond")
    b = mosq.get("ackedPerSecond") or mosq.get("sentPerSecond")
    if a and b:
        print(f"Linli / Mosquitto (acknowledged posts per second): {a / b:.2f}×")
gens = sorted(work.glob("connect-*.json"), key=lambda p: int(p.stem.split("-")[1]) if p.stem.split("-")[1].isdigit() else -1)
gens = [json.loads(p.read_text()) for p in gens if p.stem.split("-")[1].isdigit()]
if gens:
    connected = sum(g.get("connected", 0) for g in gens)
    still = sum(g.get("stillConnected") or 0 for g in gens)
    failures = {}
    for g in gens:
        for reason, k in (g.get("connectFailureReasons") or {}).items():
            failures[reason] = failures.get(reason, 0) + k
    server = read("connect-server.json") or {}
    print()
    print(f"Connections: {connected:,} of {connections:,} connected, {still:,} still connected after the hold; "
          f"server RSS {n(server.get('rssMiB'), 1)} MiB (peak {n(server.get('peakRssMiB'), 1)} MiB), "
          f"{n(server.get('openFiles'))} open files of {n(server.get('openFilesLimit'))}.")
    for reason, k in sorted(failures.items(), key=lambda kv: -kv[1])[:3]:
        print(f"  {k:,} × {reason}")
    met = connected >= 20_000 and still >= 20_000 and (server.get("rssMiB") or 1e9) <= 1024
    print(f"Target ≥ 20,000 connected devices within 1 GiB: {'met' if met else 'not met'}.")


def lines(name):
    p = work / name
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


relay_rows = []
for level in (4, 5):
    for broker, name in (("Linli (kept in the database)", "linli"), ("Mosquitto (persistence true)", "mosquitto")):
        for r in lines(f"relay-{name}-{level}.json"):
            relay_rows.append((broker, "3.1.1" if level == 4 else "5", r))
if relay_rows:
    print()
    print("| broker | MQTT | phase | subscribers | published/s | delivered/s | delivered / expected | duplicates | p50 ms | p99 ms | drain s | RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for broker, level, r in relay_rows:
        print(f"| {broker} | {level} | {r['phase']} | {r['subscribers']} | {n(r['publishedPerSecond'])} | {n(r['deliveredPerSecond'])} "
              f"| {n(r['delivered'])} / {n(r['expected'])} | {r['duplicates']} | {n(r.get('p50Milliseconds'), 2)} "
              f"| {n(r.get('p99Milliseconds'), 2)} | {n(r.get('drainSeconds'), 2)} | {n(r.get('rssMiB'), 1)} |")
connect_rows = []
for broker, name in (("Linli", "linli"), ("Mosquitto (password file)", "mosquitto")):
    for r in lines(f"connect-{name}.json"):
        connect_rows.append((broker, r))
alink = read("connect-alink.json")
if connect_rows or alink:
    print()
    print("| broker | sign-ins | cold: accounts once each, /s | cold p50 / p99 ms | cached: one account, /s | p50 / p99 ms | refused |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for broker, r in connect_rows:
        print(f"| {broker} | integration account | {n(r.get('coldConnectsPerSecond'))} ({n(r.get('coldConnects'))}) "
              f"| {n(r.get('coldP50Milliseconds'), 1)} / {n(r.get('coldP99Milliseconds'), 1)} | {n(r.get('connectsPerSecond'))} ({n(r.get('connections'))}) "
              f"| {n(r.get('p50Milliseconds'), 1)} / {n(r.get('p99Milliseconds'), 1)} | {r.get('refused')} |")
    if alink and alink.get("connectSeconds"):
        print(f"| Linli | Alink devices (HMAC) | – | – | {n(alink['connected'] / alink['connectSeconds'])} ({n(alink['connected'])}) | – | {alink['devices'] - alink['connected']} |")
idle_rows = []
for level in (4, 5):
    for broker, name in (("Linli", "linli"), ("Mosquitto", "mosquitto")):
        for r in lines(f"idle-{name}-{level}.json"):
            idle_rows.append((broker, "3.1.1" if level == 4 else "5", r))
if idle_rows:
    print()
    print("| broker | MQTT | idle connections | server RSS MiB | KiB per connection |")
    print("|---|---|---:|---:|---:|")
    for broker, level, r in idle_rows:
        print(f"| {broker} | {level} | {n(r.get('connections'))} | {n(r.get('rssMiB'), 1)} | {n(r.get('rssPerConnectionKiB'), 2)} |")
PY
