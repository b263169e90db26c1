import LinliCommunity
import LinliCore
import LinliStorage
import LinliThings
import SQLKit

extension Schema {
    /// Products, devices, gateways, integration accounts, shadow documents and firmware; telemetry in a ledger of its own
    /// (on SQLite a second file with its own writer, so a stream of device posts never queues the community's
    /// other writes behind it).
    public static let devices = Schema(
        core: [
            Migration(version: 4, name: "MQTT integration accounts") { _ in
                [
                    """
                    CREATE TABLE mqtt_accounts (
                        id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, description TEXT NOT NULL,
                        publish_acl TEXT NOT NULL, subscribe_acl TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL)
                    """
                ]
            },
            Migration(version: 5, name: "products and devices") { _ in
                [
                    """
                    CREATE TABLE products (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), product_key TEXT NOT NULL UNIQUE,
                        name TEXT NOT NULL, library_key TEXT, tsl_json TEXT NOT NULL, created_at BIGINT NOT NULL)
                    """,
                    """
                    CREATE TABLE devices (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), product_id TEXT NOT NULL REFERENCES products(id),
                        product_key TEXT NOT NULL, device_name TEXT NOT NULL, secret_cipher TEXT NOT NULL, status TEXT NOT NULL,
                        household_id TEXT, location TEXT NOT NULL, firmware TEXT NOT NULL, last_seen_at BIGINT, created_at BIGINT NOT NULL,
                        UNIQUE (product_key, device_name))
                    """,
                    "CREATE INDEX devices_community ON devices (community_id, product_key)",
                ]
            },
            Migration(version: 6, name: "device registry: place, tags, report interval; desired values") { _ in
                [
                    "ALTER TABLE devices ADD COLUMN nickname TEXT NOT NULL DEFAULT ''",
                    "ALTER TABLE devices ADD COLUMN building_id TEXT",
                    "ALTER TABLE devices ADD COLUMN unit_id TEXT",
                    "ALTER TABLE devices ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'",
                    "ALTER TABLE devices ADD COLUMN report_interval_seconds BIGINT",
                    // A device's page shows its own history from the event log.
                    "CREATE INDEX events_subject ON events (subject_id, seq)",
                    // What operators want a device's writable properties to be; sent as a property set,
                    // now if the device is connected, else when it next signs in.
                    """
                    CREATE TABLE device_desired (
                        device_id TEXT NOT NULL REFERENCES devices(id), community_id TEXT NOT NULL, identifier TEXT NOT NULL,
                        value TEXT NOT NULL, version BIGINT NOT NULL, set_at BIGINT NOT NULL, delivered_at BIGINT,
                        PRIMARY KEY (device_id, identifier))
                    """,
                ]
            },
            Migration(version: 7, name: "gateways and sub-devices") { _ in
                [
                    // A product is a directly connected device or a gateway; only a gateway's devices may
                    // bring others in (Alink's topology).
                    "ALTER TABLE products ADD COLUMN node_type TEXT NOT NULL DEFAULT 'device'",
                    // The gateway a sub-device connects through: at most one, replaced when another adds it.
                    "ALTER TABLE devices ADD COLUMN gateway_id TEXT",
                    "CREATE INDEX devices_gateway ON devices (gateway_id)",
                ]
            },
            Migration(version: 17, name: "devices worn by a person") { _ in
                [
                    // A pendant, a bracelet, a smart cane: whose it is, so that a person's silence can be a rule.
                    "ALTER TABLE devices ADD COLUMN person_id TEXT"
                ]
            },
            Migration(version: 18, name: "shadow documents") { _ in
                [
                    // Alibaba's device shadow: one free-form JSON document a device, beside its thing
                    // model's values. `version` is the document's own, checked on every change.
                    """
                    CREATE TABLE device_shadow_documents (
                        device_id TEXT PRIMARY KEY REFERENCES devices(id), community_id TEXT NOT NULL,
                        document TEXT NOT NULL, version BIGINT NOT NULL, updated_at BIGINT NOT NULL)
                    """
                ]
            },
            Migration(version: 19, name: "device labels, sub-device registration") { _ in
                [
                    // Labels a device states about itself (maker, model, batch), as a JSON object:
                    // Alink's device info, apart from the operator's tags.
                    "ALTER TABLE devices ADD COLUMN labels TEXT NOT NULL DEFAULT '{}'",
                    // Whether a gateway may ask for the secrets of this product's devices.
                    "ALTER TABLE products ADD COLUMN dynamic_registration BOOLEAN NOT NULL DEFAULT FALSE",
                ]
            },
            Migration(version: 20, name: "firmware and upgrades") { _ in
                [
                    // A product's firmware packages; the bytes are a file in the attachments folder.
                    """
                    CREATE TABLE firmware (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL, product_key TEXT NOT NULL, module TEXT NOT NULL, version TEXT NOT NULL,
                        size BIGINT NOT NULL, sha256 TEXT NOT NULL, md5 TEXT NOT NULL, file TEXT NOT NULL, created_by TEXT NOT NULL, created_at BIGINT NOT NULL,
                        UNIQUE (product_key, module, version))
                    """,
                    // One device's upgrade to one package: where it stands, and (hashed) the token of
                    // the download address it was last offered.
                    """
                    CREATE TABLE firmware_upgrades (
                        device_id TEXT NOT NULL REFERENCES devices(id), firmware_id TEXT NOT NULL REFERENCES firmware(id), community_id TEXT NOT NULL,
                        module TEXT NOT NULL, status TEXT NOT NULL, step INTEGER NOT NULL, detail TEXT NOT NULL, token_hash TEXT,
                        created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (device_id, firmware_id))
                    """,
                    "CREATE INDEX firmware_upgrades_firmware ON firmware_upgrades (firmware_id)",
                    "CREATE INDEX firmware_upgrades_token ON firmware_upgrades (token_hash)",
                ]
            },
        ],
        telemetry: [
            Migration(version: 1, name: "telemetry, reported shadow, diagnosis") { engine in
                let id = engine == .sqlite ? "id INTEGER PRIMARY KEY AUTOINCREMENT" : "id BIGSERIAL PRIMARY KEY"
                return [
                    // One series per device property; telemetry rows name the series by number, which
                    // keeps the high-rate table and its index small.
                    "CREATE TABLE telemetry_series (\(id), device_id TEXT NOT NULL, identifier TEXT NOT NULL, UNIQUE (device_id, identifier))",
                    "CREATE TABLE telemetry (series BIGINT NOT NULL, ts BIGINT NOT NULL, num DOUBLE PRECISION, txt TEXT)",
                    "CREATE INDEX telemetry_series_ts ON telemetry (series, ts)",
                    """
                    CREATE TABLE device_shadow (
                        device_id TEXT NOT NULL, identifier TEXT NOT NULL, value TEXT NOT NULL, reported_at BIGINT NOT NULL,
                        version BIGINT NOT NULL, PRIMARY KEY (device_id, identifier))
                    """,
                    """
                    CREATE TABLE device_diagnosis (
                        device_id TEXT PRIMARY KEY, messages BIGINT NOT NULL, errors BIGINT NOT NULL, last_error TEXT,
                        last_error_at BIGINT, last_seen_at BIGINT NOT NULL)
                    """,
                ]
            },
            Migration(version: 2, name: "recent history appended in arrival order") { _ in
                [
                    // Group commits append here, with no index: a commit writes a few pages at the end of
                    // one table instead of one page per series in the (series, ts) index. The writer
                    // moves these rows into `telemetry` in sorted runs once enough have gathered, so each
                    // series' index page is written once per run, not once per commit. Readers look in
                    // both tables. Rows already in `telemetry` stay where they are.
                    "CREATE TABLE telemetry_recent (series BIGINT NOT NULL, ts BIGINT NOT NULL, num DOUBLE PRECISION, txt TEXT)"
                ]
            },
            Migration(version: 3, name: "history in binary: a log of commits, merged into blocks per series") {
                engine in
                let id = engine == .sqlite ? "id INTEGER PRIMARY KEY" : "id BIGSERIAL PRIMARY KEY"
                let blob = engine == .sqlite ? "BLOB" : "BYTEA"
                return [
                    // What waited to be merged joins the rows from before blocks, which are read and
                    // pruned as before and no longer written.
                    "INSERT INTO telemetry (series, ts, num, txt) SELECT series, ts, num, txt FROM telemetry_recent ORDER BY series, ts",
                    "DROP TABLE telemetry_recent",
                    // One row per group commit: its values, in arrival order, in one blob.
                    "CREATE TABLE telemetry_log (\(id), count INTEGER NOT NULL, first_ts BIGINT NOT NULL, last_ts BIGINT NOT NULL, data \(blob) NOT NULL)",
                    // One row per series per merge: its values sorted by time.
                    "CREATE TABLE telemetry_blocks (\(id), series BIGINT NOT NULL, first_ts BIGINT NOT NULL, last_ts BIGINT NOT NULL, count INTEGER NOT NULL, data \(blob) NOT NULL)",
                    "CREATE INDEX telemetry_blocks_series ON telemetry_blocks (series, last_ts)",
                ]
            },
        ]
    )
}
