import LinliCore
import Logging
import SQLKit

/// One step of the schema, written once for both engines. Only the auto-incrementing sequence of the
/// event log differs between SQLite and PostgreSQL.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let statements: @Sendable (Engine) -> [String]
}

public enum MigrationError: Error, CustomStringConvertible {
    case databaseNewer(database: Int, known: Int)
    case notCurrent(database: Int, known: Int)

    public var description: String {
        switch self {
        case let .databaseNewer(database, known):
            return
                "the database is at schema version \(database), newer than this Linli understands (\(known)); run a newer Linli"
        case let .notCurrent(database, known):
            return "the database is at schema version \(database) and this Linli needs \(known); run `linli migrate`"
        }
    }
}

public enum Migrations {
    /// Append only: a released migration is never edited, a change is a new version.
    public static let all: [Migration] = [
        Migration(version: 1, name: "community data core") { _ in
            [
                """
                CREATE TABLE communities (
                    id TEXT PRIMARY KEY, name TEXT NOT NULL, city_code TEXT NOT NULL, district_code TEXT NOT NULL,
                    street_code TEXT NOT NULL, address TEXT NOT NULL, created_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE buildings (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                    floors BIGINT NOT NULL, UNIQUE (community_id, name))
                """,
                """
                CREATE TABLE units (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id),
                    building_id TEXT NOT NULL REFERENCES buildings(id), name TEXT NOT NULL, UNIQUE (building_id, name))
                """,
                """
                CREATE TABLE households (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id),
                    building_id TEXT NOT NULL REFERENCES buildings(id), unit_id TEXT NOT NULL REFERENCES units(id),
                    room TEXT NOT NULL, floor BIGINT NOT NULL, area DOUBLE PRECISION, occupancy TEXT NOT NULL,
                    UNIQUE (unit_id, room))
                """,
                "CREATE INDEX households_community ON households (community_id, building_id, unit_id, room)",
                """
                CREATE TABLE people (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                    phone TEXT NOT NULL, identity_cipher TEXT, identity_index TEXT, identity_masked TEXT,
                    care_tags TEXT NOT NULL, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX people_community_name ON people (community_id, name)",
                "CREATE INDEX people_identity ON people (community_id, identity_index)",
                """
                CREATE TABLE residencies (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id),
                    person_id TEXT NOT NULL REFERENCES people(id), household_id TEXT NOT NULL REFERENCES households(id),
                    role TEXT NOT NULL, lease_start TEXT, lease_end TEXT, moved_in TEXT NOT NULL, moved_out TEXT)
                """,
                "CREATE INDEX residencies_household ON residencies (household_id)",
                "CREATE INDEX residencies_person ON residencies (person_id)",
                """
                CREATE TABLE vehicles (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), plate TEXT NOT NULL,
                    household_id TEXT REFERENCES households(id), person_id TEXT REFERENCES people(id),
                    description TEXT NOT NULL, UNIQUE (community_id, plate))
                """,
                """
                CREATE TABLE organisations (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                    kind TEXT NOT NULL, phone TEXT NOT NULL)
                """,
                """
                CREATE TABLE staff (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id),
                    organisation_id TEXT NOT NULL REFERENCES organisations(id), name TEXT NOT NULL, title TEXT NOT NULL,
                    phone TEXT NOT NULL, account_id TEXT)
                """,
                """
                CREATE TABLE grids (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                    worker_account_id TEXT)
                """,
                """
                CREATE TABLE grid_buildings (
                    grid_id TEXT NOT NULL REFERENCES grids(id), building_id TEXT NOT NULL REFERENCES buildings(id),
                    community_id TEXT NOT NULL, PRIMARY KEY (grid_id, building_id))
                """,
            ]
        },
        Migration(version: 2, name: "identity and access") { _ in
            [
                """
                CREATE TABLE accounts (
                    id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
                    password_hash TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL,
                    password_changed_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE role_bindings (
                    id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), role TEXT NOT NULL,
                    community_id TEXT, organisation_id TEXT, grid_id TEXT, household_id TEXT, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX role_bindings_account ON role_bindings (account_id)",
                """
                CREATE TABLE sessions (
                    id_hash TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), csrf_token TEXT NOT NULL,
                    created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL)
                """,
                """
                CREATE TABLE api_tokens (
                    id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
                    token_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, last_used_at BIGINT, revoked_at BIGINT)
                """,
                """
                CREATE TABLE audit_log (
                    id TEXT PRIMARY KEY, at BIGINT NOT NULL, actor_id TEXT, actor_name TEXT NOT NULL, action TEXT NOT NULL,
                    subject_type TEXT NOT NULL, subject_id TEXT NOT NULL, community_id TEXT, before_json TEXT,
                    after_json TEXT, remote TEXT)
                """,
                "CREATE INDEX audit_log_at ON audit_log (at)",
            ]
        },
        Migration(version: 3, name: "event log") { engine in
            let seq = engine == .sqlite ? "seq INTEGER PRIMARY KEY AUTOINCREMENT" : "seq BIGSERIAL PRIMARY KEY"
            return [
                """
                CREATE TABLE events (
                    \(seq), id TEXT NOT NULL UNIQUE, community_id TEXT, type TEXT NOT NULL, subject_type TEXT NOT NULL,
                    subject_id TEXT NOT NULL, actor_id TEXT, at BIGINT NOT NULL, payload TEXT NOT NULL)
                """,
                "CREATE INDEX events_community ON events (community_id, seq)",
                "CREATE TABLE event_checkpoints (consumer TEXT PRIMARY KEY, seq BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
            ]
        },
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
        Migration(version: 8, name: "rules and alarms") { _ in
            [
                """
                CREATE TABLE rules (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                    enabled BOOLEAN NOT NULL, definition TEXT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
                """,
                "CREATE INDEX rules_community ON rules (community_id)",
                // Triggers that last (a duration, an absence) keep their state here, written on
                // transitions only, so timers survive a restart without a write per message.
                """
                CREATE TABLE rule_states (
                    rule_id TEXT NOT NULL, trigger_index INTEGER NOT NULL, device_id TEXT NOT NULL,
                    since BIGINT, holding BOOLEAN NOT NULL, fired BOOLEAN NOT NULL,
                    PRIMARY KEY (rule_id, trigger_index, device_id))
                """,
                """
                CREATE TABLE alarms (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), type TEXT NOT NULL, severity TEXT NOT NULL,
                    source_type TEXT NOT NULL, source_id TEXT NOT NULL, source_name TEXT NOT NULL, building_id TEXT, household_id TEXT,
                    rule_id TEXT, message TEXT NOT NULL, detail TEXT NOT NULL, occurrences BIGINT NOT NULL,
                    first_at BIGINT NOT NULL, last_at BIGINT NOT NULL, acknowledged_at BIGINT, acknowledged_by TEXT,
                    cleared_at BIGINT, cleared_by TEXT, work_order_id TEXT)
                """,
                // One open alarm per source and type: a repeat counts, it does not flood.
                "CREATE UNIQUE INDEX alarms_open ON alarms (source_id, type) WHERE cleared_at IS NULL",
                "CREATE INDEX alarms_community ON alarms (community_id, last_at)",
                """
                CREATE TABLE alarm_comments (
                    id TEXT PRIMARY KEY, alarm_id TEXT NOT NULL REFERENCES alarms(id), author_id TEXT, author_name TEXT NOT NULL,
                    at BIGINT NOT NULL, text TEXT NOT NULL)
                """,
                "CREATE INDEX alarm_comments_alarm ON alarm_comments (alarm_id, at)",
            ]
        },
        Migration(version: 9, name: "webhook deliveries") { _ in
            [
                // Each call a rule makes to another system, kept until it is taken or given up on,
                // so a restart loses none and people can see what was sent and what came back.
                """
                CREATE TABLE webhook_deliveries (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL, rule_id TEXT NOT NULL, url TEXT NOT NULL, secret_cipher TEXT NOT NULL,
                    payload TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, next_at BIGINT NOT NULL,
                    last_status INTEGER, last_error TEXT, created_at BIGINT NOT NULL, delivered_at BIGINT)
                """,
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at)",
                "CREATE INDEX webhook_deliveries_rule ON webhook_deliveries (rule_id, created_at)",
            ]
        },
        Migration(version: 10, name: "notifications and alarm escalation") { _ in
            [
                // A person's inbox: what rules (and later notices) tell them.
                """
                CREATE TABLE notifications (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL, account_id TEXT NOT NULL REFERENCES accounts(id),
                    title TEXT NOT NULL, body TEXT NOT NULL, severity TEXT, link TEXT, subject_type TEXT, subject_id TEXT,
                    created_at BIGINT NOT NULL, read_at BIGINT)
                """,
                "CREATE INDEX notifications_account ON notifications (account_id, created_at)",
                // An unacknowledged alarm's next escalation: which tier, and when.
                "ALTER TABLE alarms ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE alarms ADD COLUMN next_escalation_at BIGINT",
                "CREATE INDEX alarms_escalation ON alarms (next_escalation_at)",
            ]
        },
        Migration(version: 11, name: "work orders") { _ in
            [
                """
                CREATE TABLE work_orders (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), number TEXT NOT NULL,
                    category TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL, source TEXT NOT NULL, status TEXT NOT NULL,
                    reporter_account_id TEXT, reporter_name TEXT NOT NULL, reporter_phone TEXT NOT NULL,
                    household_id TEXT, building_id TEXT, location TEXT NOT NULL,
                    organisation_id TEXT, assignee_account_id TEXT, assignee_name TEXT, alarm_id TEXT,
                    due_at BIGINT NOT NULL, overdue_at BIGINT, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
                    resolved_at BIGINT, closed_at BIGINT, rating INTEGER, rating_comment TEXT, reopen_count INTEGER NOT NULL)
                """,
                "CREATE UNIQUE INDEX work_orders_number ON work_orders (community_id, number)",
                "CREATE INDEX work_orders_community ON work_orders (community_id, status, created_at)",
                "CREATE INDEX work_orders_due ON work_orders (due_at)",
                "CREATE INDEX work_orders_reporter ON work_orders (reporter_account_id)",
                // Every step, who and when: the work order's timeline.
                """
                CREATE TABLE work_order_steps (
                    id TEXT PRIMARY KEY, work_order_id TEXT NOT NULL REFERENCES work_orders(id), community_id TEXT NOT NULL, at BIGINT NOT NULL,
                    actor_id TEXT, actor_name TEXT NOT NULL, step TEXT NOT NULL, from_status TEXT, to_status TEXT NOT NULL, note TEXT NOT NULL)
                """,
                "CREATE INDEX work_order_steps_order ON work_order_steps (work_order_id, at)",
                // Per community and category: who handles it by default, how long it may take, how it is dispatched.
                """
                CREATE TABLE work_order_settings (
                    community_id TEXT NOT NULL REFERENCES communities(id), category TEXT NOT NULL, organisation_id TEXT,
                    deadline_hours INTEGER NOT NULL, dispatch TEXT NOT NULL, team TEXT NOT NULL, next_in_turn INTEGER NOT NULL,
                    PRIMARY KEY (community_id, category))
                """,
            ]
        },
        Migration(version: 12, name: "Open311") { _ in
            [
                // Keys for third-party reporters (a city app, a hotline system): only the hash is kept.
                """
                CREATE TABLE open311_keys (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                    key_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, revoked_at BIGINT)
                """,
                "ALTER TABLE work_orders ADD COLUMN lat DOUBLE PRECISION",
                "ALTER TABLE work_orders ADD COLUMN lon DOUBLE PRECISION",
                "ALTER TABLE work_orders ADD COLUMN media_url TEXT",
                "ALTER TABLE work_orders ADD COLUMN reporter_email TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE work_orders ADD COLUMN open311_key_id TEXT",
            ]
        },
        Migration(version: 13, name: "work order photos") { _ in
            [
                // The photo files live in the data folder; the rows say whose, what kind and how big.
                """
                CREATE TABLE work_order_photos (
                    id TEXT PRIMARY KEY, work_order_id TEXT NOT NULL REFERENCES work_orders(id), community_id TEXT NOT NULL,
                    content_type TEXT NOT NULL, size BIGINT NOT NULL, file TEXT NOT NULL, uploaded_by TEXT NOT NULL, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX work_order_photos_order ON work_order_photos (work_order_id, created_at)",
            ]
        },
        Migration(version: 14, name: "notices and receipts") { _ in
            [
                """
                CREATE TABLE notices (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), title TEXT NOT NULL, body TEXT NOT NULL,
                    audience TEXT NOT NULL, question TEXT, options TEXT NOT NULL, households BIGINT NOT NULL,
                    created_by TEXT NOT NULL, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX notices_community ON notices (community_id, created_at)",
                // One row per household reached: when someone there read it, and what they answered.
                """
                CREATE TABLE notice_receipts (
                    notice_id TEXT NOT NULL REFERENCES notices(id), household_id TEXT NOT NULL, community_id TEXT NOT NULL,
                    delivered_at BIGINT NOT NULL, read_at BIGINT, read_by TEXT, answer TEXT, answered_at BIGINT, answered_by TEXT,
                    PRIMARY KEY (notice_id, household_id))
                """,
                "CREATE INDEX notice_receipts_household ON notice_receipts (household_id)",
            ]
        },
        Migration(version: 15, name: "notification preferences and outbound messages") { _ in
            [
                // How each person wants to be told; phone and e-mail address encrypted.
                """
                CREATE TABLE notification_preferences (
                    account_id TEXT PRIMARY KEY REFERENCES accounts(id), sms BOOLEAN NOT NULL, email BOOLEAN NOT NULL,
                    phone_cipher TEXT, email_cipher TEXT, quiet_from TEXT, quiet_to TEXT, updated_at BIGINT NOT NULL)
                """,
                // Copies of inbox messages for SMS and e-mail, and notices sent to residents'
                // registered phones, sent by the outbound worker.
                """
                CREATE TABLE outbound_messages (
                    id TEXT PRIMARY KEY, community_id TEXT NOT NULL, account_id TEXT, notification_id TEXT, person_id TEXT, notice_id TEXT,
                    channel TEXT NOT NULL, address_cipher TEXT NOT NULL, address_masked TEXT NOT NULL,
                    subject TEXT NOT NULL, body TEXT NOT NULL, severity TEXT, status TEXT NOT NULL, due_at BIGINT NOT NULL,
                    attempts INTEGER NOT NULL, last_error TEXT, sent_at BIGINT, created_at BIGINT NOT NULL)
                """,
                "CREATE INDEX outbound_messages_due ON outbound_messages (status, due_at)",
                "CREATE INDEX outbound_messages_community ON outbound_messages (community_id, created_at)",
                "CREATE INDEX outbound_messages_notice ON outbound_messages (notice_id)",
            ]
        },
        Migration(version: 16, name: "notice answer deadlines") { _ in
            [
                // When households should have answered by, and when Linli found some had not.
                "ALTER TABLE notices ADD COLUMN answer_by BIGINT",
                "ALTER TABLE notices ADD COLUMN unanswered_at BIGINT",
                "CREATE INDEX notices_answer_by ON notices (answer_by)",
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
    ]

    /// Telemetry has storage of its own (on SQLite, a second file with its own writer), so that a
    /// stream of device posts never queues the community's other writes behind it. Its own ledger.
    public static let telemetry: [Migration] = [
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
        Migration(version: 3, name: "history in binary: a log of commits, merged into blocks per series") { engine in
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

    /// A list of migrations and the table that records which of them a database has.
    public struct Ledger: Sendable {
        public let table: String
        public let migrations: [Migration]
        public var latest: Int { migrations.last?.version ?? 0 }
        public static let core = Ledger(table: "schema_migrations", migrations: Migrations.all)
        public static let telemetry = Ledger(table: "telemetry_migrations", migrations: Migrations.telemetry)
    }

    /// Brings both of a store's schemas up to date: the community's and telemetry's.
    @discardableResult
    public static func migrate(_ store: Store, logger: Logger? = nil) async throws -> [Int] {
        let applied = try await migrate(store.database, logger: logger)
        try await migrate(store.telemetry, ledger: .telemetry, logger: logger)
        return applied
    }

    public static func requireCurrent(_ store: Store) async throws {
        try await requireCurrent(store.database)
        try await requireCurrent(store.telemetry, ledger: .telemetry)
    }

    public static var latest: Int { all.last?.version ?? 0 }

    /// The schema version recorded in the database, 0 for an empty one.
    public static func currentVersion(_ database: any Database, ledger: Ledger = .core) async throws -> Int {
        try await database.read { db in
            try await ensureTable(db, ledger)
            let row = try await db.raw("SELECT MAX(version) AS version FROM \(unsafeRaw: ledger.table)").first()
            return try row?.decode(column: "version", as: Int?.self) ?? 0
        }
    }

    /// Applies every migration newer than the database, each in its own transaction.
    /// Returns the versions applied.
    @discardableResult
    public static func migrate(_ database: any Database, ledger: Ledger = .core, logger: Logger? = nil) async throws
        -> [Int]
    {
        let current = try await currentVersion(database, ledger: ledger)
        let latest = ledger.latest
        if current > latest { throw MigrationError.databaseNewer(database: current, known: latest) }
        var applied: [Int] = []
        for migration in ledger.migrations where migration.version > current {
            try await database.write { db in
                for statement in migration.statements(database.engine) {
                    try await db.raw(SQLQueryString(statement)).run()
                }
                try await db.raw(
                    "INSERT INTO \(unsafeRaw: ledger.table) (version, name, applied_at) VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: nowMillis()))"
                ).run()
            }
            logger?.info(
                "applied migration",
                metadata: ["ledger": "\(ledger.table)", "version": "\(migration.version)", "name": "\(migration.name)"])
            applied.append(migration.version)
        }
        if !applied.isEmpty { try await database.schemaChanged() }
        return applied
    }

    /// `serve` refuses a database it does not understand, and one that needs migrating.
    public static func requireCurrent(_ database: any Database, ledger: Ledger = .core) async throws {
        let current = try await currentVersion(database, ledger: ledger)
        let latest = ledger.latest
        if current > latest { throw MigrationError.databaseNewer(database: current, known: latest) }
        if current < latest { throw MigrationError.notCurrent(database: current, known: latest) }
    }

    private static func ensureTable(_ db: any SQLDatabase, _ ledger: Ledger) async throws {
        try await db.raw(
            "CREATE TABLE IF NOT EXISTS \(unsafeRaw: ledger.table) (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        ).run()
    }
}
