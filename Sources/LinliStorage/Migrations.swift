import LinliCore
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
            return "the database is at schema version \(database), newer than this Linli understands (\(known)); run a newer Linli"
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
                """,
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
    ]

    public static var latest: Int { all.last?.version ?? 0 }

    /// The schema version recorded in the database, 0 for an empty one.
    public static func currentVersion(_ database: any Database) async throws -> Int {
        try await database.read { db in
            try await ensureTable(db)
            let row = try await db.raw("SELECT MAX(version) AS version FROM schema_migrations").first()
            return try row?.decode(column: "version", as: Int?.self) ?? 0
        }
    }

    /// Applies every migration newer than the database, each in its own transaction.
    /// Returns the versions applied.
    @discardableResult
    public static func migrate(_ database: any Database, logger: Logger? = nil) async throws -> [Int] {
        let current = try await currentVersion(database)
        if current > latest { throw MigrationError.databaseNewer(database: current, known: latest) }
        var applied: [Int] = []
        for migration in all where migration.version > current {
            try await database.write { db in
                for statement in migration.statements(database.engine) {
                    try await db.raw(SQLQueryString(statement)).run()
                }
                try await db.raw("INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: nowMillis()))").run()
            }
            logger?.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }

    /// `serve` refuses a database it does not understand, and one that needs migrating.
    public static func requireCurrent(_ database: any Database) async throws {
        let current = try await currentVersion(database)
        if current > latest { throw MigrationError.databaseNewer(database: current, known: latest) }
        if current < latest { throw MigrationError.notCurrent(database: current, known: latest) }
    }

    private static func ensureTable(_ db: any SQLDatabase) async throws {
        try await db.raw("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)").run()
    }
}

import Logging
