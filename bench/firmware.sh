#!/usr/bin/env bash
# Firmware downloads: many devices fetching one package at once, as after "upgrade all".
#
# Builds nothing: run `swift build -c release --product linli` first. Environment:
#   LINLI_BIN   binary to measure (default .build/release/linli, relative to the repo root)
#   SIZE_MIB    package size in MiB (default 8)
#   PARALLEL    downloads at the same time (default 100)
#   ROUNDS      downloads in all (default 300)
#   LIMIT_RATE  each download's speed as curl's --limit-rate takes it (default none: as fast as
#               loopback goes); devices on a 4G link or a busy Wi-Fi fetch far slower, e.g. 1M
#
# A fresh data folder gets a demo community, an access-controller product and one device; the
# package is uploaded through the API and the upgrade started; a paho device signs in and takes
# the offer's address; then curl fetches it ROUNDS times, PARALLEL at once. Reported: the time,
# the rate, every download's digest checked, and the server's RSS before and at its peak (VmHWM).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${LINLI_BIN:-.build/release/linli}
SIZE_MIB=${SIZE_MIB:-8}
PARALLEL=${PARALLEL:-100}
ROUNDS=${ROUNDS:-300}
LIMIT_RATE=${LIMIT_RATE:-}
[ -x "$BIN" ] || { echo "no $BIN: run swift build -c release --product linli" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'kill "${SERVER:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
DATA=$WORK/data
"$BIN" demo --data "$DATA" >/dev/null
"$BIN" user create --data "$DATA" --username ops --role platform_admin --password-stdin <<< "operations-password-1" >/dev/null
TOKEN=$("$BIN" token create --data "$DATA" --username ops --name bench | tail -1)
PK=$("$BIN" product create --data "$DATA" --library access_controller | tail -1)
TRIPLE=$("$BIN" device create --data "$DATA" --product-key "$PK" --name door-1 | tail -1)
HTTP=127.0.0.1:$((20000 + RANDOM % 10000))
MQTT=127.0.0.1:$((30000 + RANDOM % 2000))
"$BIN" serve --data "$DATA" --http "$HTTP" --mqtt "$MQTT" --mqtt-tls off --log-level warning >"$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://$HTTP/readyz" 2>/dev/null && break; sleep 0.2; done

head -c $((SIZE_MIB * 1048576)) /dev/urandom > "$WORK/package.bin"
SHA=$(sha256sum "$WORK/package.bin" | cut -d' ' -f1)
FIRMWARE=$(curl -fsS -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/octet-stream" \
    --data-binary @"$WORK/package.bin" "http://$HTTP/api/v1/products/$PK/firmware?version=9.0.0" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# The device signs in, the upgrade starts, the offer brings the address.
URL=$(python3 - "$MQTT" "$TRIPLE" "$HTTP" "$TOKEN" "$PK" "$FIRMWARE" <<'EOF'
import hashlib, hmac, json, queue, sys, time, urllib.request
import paho.mqtt.client as mqtt
address, triple, http, token, pk, firmware = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
host, port = address.split(":")
_, dn, secret = triple
ts = int(time.time() * 1000)
password = hmac.new(secret.encode(), f"clientId{dn}deviceName{dn}productKey{pk}timestamp{ts}".encode(), hashlib.sha256).hexdigest()
offers = queue.Queue()
c = mqtt.Client(client_id=f"{dn}|securemode=3,signmethod=hmacsha256,timestamp={ts}|", protocol=mqtt.MQTTv311)
c.username_pw_set(f"{dn}&{pk}", password)
c.on_message = lambda cl, ud, msg: offers.put(json.loads(msg.payload))
c.connect(host, int(port))
c.loop_start()
time.sleep(1)
request = urllib.request.Request(f"http://{http}/api/v1/products/{pk}/firmware/{firmware}/upgrades", method="POST",
                                 data=json.dumps({"devices": [dn]}).encode(),
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
urllib.request.urlopen(request).read()
print(offers.get(timeout=10)["data"]["url"])
c.loop_stop()
EOF
)

rss() { awk -v k="$1" '$1 == k":" {printf "%.1f", $2/1024}' "/proc/$SERVER/status"; }
BEFORE=$(rss VmRSS)
START=$(date +%s.%N)
LIMIT=${LIMIT_RATE:+--limit-rate $LIMIT_RATE}
seq 1 "$ROUNDS" | xargs -P "$PARALLEL" -I{} sh -c "curl -fsS $LIMIT '$URL' | sha256sum | cut -d' ' -f1" > "$WORK/digests"
END=$(date +%s.%N)
GOOD=$(grep -c "^$SHA\$" "$WORK/digests" || true)
SECONDS_TAKEN=$(python3 -c "print(f'{$END - $START:.2f}')")
RATE=$(python3 -c "print(f'{$ROUNDS * $SIZE_MIB / ($END - $START):.0f}')")
echo "firmware downloads: $ROUNDS of a $SIZE_MIB MiB package, $PARALLEL at once${LIMIT_RATE:+, each at most $LIMIT_RATE/s}"
echo "  time          $SECONDS_TAKEN s ($RATE MiB/s)"
echo "  digests       $GOOD of $ROUNDS match"
echo "  server RSS    $BEFORE MiB before, $(rss VmRSS) MiB after, peak $(rss VmHWM) MiB"
