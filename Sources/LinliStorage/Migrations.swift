import LinliCore
import Logging
import SQLKit

/// One step of the schema, written once for both engines. Only the auto-incrementing sequence of the
/// event log differs between SQLite and PostgreSQL.
///
/// Versions are numbered across all modules, in one sequence, so that every database records one
/// history. A version may come in parts from several modules (versions 2 and 10 were written before
/// the modules and touched the tables of two): the parts of a version carry its name and are applied
/// together, in one transaction.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let statements: @Sendable (Engine) -> [String]

    public init(version: Int, name: String, statements: @escaping @Sendable (Engine) -> [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }
}

public enum MigrationError: Error, CustomStringConvertible, Equatable {
    case databaseNewer(database: Int, known: Int)
    case notCurrent(database: Int, known: Int)
    /// Two modules gave one version different names: one of them must take the next free number.
    case clash(version: Int, names: [String])

    public var description: String {
        switch self {
        case let .databaseNewer(database, known):
            return
                "the database is at schema version \(database), newer than this Linli understands (\(known)); run a newer Linli"
        case let .notCurrent(database, known):
            return "the database is at schema version \(database) and this Linli needs \(known); run `linli migrate`"
        case let .clash(version, names):
            return "schema version \(version) is claimed by several migrations (\(names.joined(separator: ", ")))"
        }
    }
}

/// The migrations of the modules a Linli is built from, in two ledgers: the community's database and
/// telemetry's (on SQLite a second file with its own writer). Each module declares its part
/// (`Schema.community`, `Schema.devices`, …) and the assembly adds them up.
public struct Schema: Sendable {
    public var core: [Migration]
    public var telemetry: [Migration]

    public init(core: [Migration] = [], telemetry: [Migration] = []) {
        self.core = core
        self.telemetry = telemetry
    }

    public static func + (lhs: Schema, rhs: Schema) -> Schema {
        Schema(core: lhs.core + rhs.core, telemetry: lhs.telemetry + rhs.telemetry)
    }

    public var coreLedger: Migrations.Ledger { Migrations.Ledger(table: "schema_migrations", migrations: core) }
    public var telemetryLedger: Migrations.Ledger {
        Migrations.Ledger(table: "telemetry_migrations", migrations: telemetry)
    }
    /// The newest version of the community's database.
    public var latest: Int { coreLedger.latest }
}

public enum Migrations {
    /// Append only: a released migration is never edited, a change is a new version.
    public struct Ledger: Sendable {
        public let table: String
        public let migrations: [Migration]
        public var latest: Int { migrations.map(\.version).max() ?? 0 }

        public init(table: String, migrations: [Migration]) {
            self.table = table
            self.migrations = migrations
        }

        /// The versions in order, each with its parts in the order the modules were added.
        package func steps() throws(MigrationError) -> [(version: Int, name: String, parts: [Migration])] {
            let byVersion = Dictionary(grouping: migrations, by: \.version)
            return try byVersion.keys.sorted().map { version throws(MigrationError) in
                let parts = byVersion[version]!
                let names = Set(parts.map(\.name))
                if names.count > 1 { throw MigrationError.clash(version: version, names: names.sorted()) }
                return (version, parts[0].name, parts)
            }
        }
    }

    /// Brings both of a store's schemas up to date: the community's and telemetry's.
    @discardableResult
    public static func migrate(_ store: Store, schema: Schema, logger: Logger? = nil) async throws -> [Int] {
        let applied = try await migrate(store.database, ledger: schema.coreLedger, logger: logger)
        try await migrate(store.telemetry, ledger: schema.telemetryLedger, logger: logger)
        return applied
    }

    public static func requireCurrent(_ store: Store, schema: Schema) async throws {
        try await requireCurrent(store.database, ledger: schema.coreLedger)
        try await requireCurrent(store.telemetry, ledger: schema.telemetryLedger)
    }

    /// The schema version recorded in the database, 0 for an empty one.
    public static func currentVersion(_ database: any Database, ledger: Ledger) async throws -> Int {
        try await database.read { db in
            try await ensureTable(db, ledger)
            let row = try await db.raw("SELECT MAX(version) AS version FROM \(unsafeRaw: ledger.table)").first()
            return try row?.decode(column: "version", as: Int?.self) ?? 0
        }
    }

    /// Applies every migration newer than the database, each version in its own transaction.
    /// Returns the versions applied.
    @discardableResult
    public static func migrate(_ database: any Database, ledger: Ledger, logger: Logger? = nil) async throws -> [Int] {
        let steps = try ledger.steps()
        let current = try await currentVersion(database, ledger: ledger)
        let latest = ledger.latest
        if current > latest { throw MigrationError.databaseNewer(database: current, known: latest) }
        var applied: [Int] = []
        for step in steps where step.version > current {
            try await database.write { db in
                for part in step.parts {
                    for statement in part.statements(database.engine) {
                        try await db.raw(SQLQueryString(statement)).run()
                    }
                }
                try await db.raw(
                    "INSERT INTO \(unsafeRaw: ledger.table) (version, name, applied_at) VALUES (\(bind: step.version), \(bind: step.name), \(bind: nowMillis()))"
                ).run()
            }
            logger?.info(
                "applied migration",
                metadata: ["ledger": "\(ledger.table)", "version": "\(step.version)", "name": "\(step.name)"])
            applied.append(step.version)
        }
        if !applied.isEmpty { try await database.schemaChanged() }
        return applied
    }

    /// `serve` refuses a database it does not understand, and one that needs migrating.
    public static func requireCurrent(_ database: any Database, ledger: Ledger) async throws {
        _ = try ledger.steps()
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
