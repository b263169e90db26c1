import Foundation
import LinliCore
import Logging
import Metrics
import NIOCore
import NIOPosix
import PostgresKit
import SQLKit
import SQLiteKit
import Synchronization

public enum Engine: String, Sendable {
    case sqlite, postgres
}

/// The storage engine behind every repository: SQLite in a data folder, or PostgreSQL.
///
/// `read` runs on any pooled connection; `write` runs one transaction and, on SQLite, serialises
/// writers in-process (one writer connection) so that concurrent requests never meet SQLITE_BUSY.
public protocol Database: Sendable {
    var engine: Engine { get }
    func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    func write<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T
    /// After a migration: every connection reads the new schema before it next answers a query.
    func schemaChanged() async throws
    func close() async
}

/// A small async pool: callers wait in order for a free item.
/// Reports `linli_db_connections{pool, state}` (in use, idle) and waiters, for /metrics.
actor Pool<Item: Sendable> {
    private var idle: [Item]
    private var waiters: [CheckedContinuation<Item, Never>] = []
    let all: [Item]
    private let inUse: Gauge
    private let waiting: Gauge

    init(_ items: [Item], name: String) {
        idle = items
        all = items
        inUse = Gauge(label: "linli_db_connections", dimensions: [("pool", name), ("state", "in_use")])
        waiting = Gauge(label: "linli_db_waiters", dimensions: [("pool", name)])
        Gauge(label: "linli_db_connections", dimensions: [("pool", name), ("state", "total")]).record(items.count)
        inUse.record(0)
        waiting.record(0)
    }

    func acquire() async -> Item {
        if let item = idle.popLast() {
            inUse.record(all.count - idle.count)
            return item
        }
        waiting.record(waiters.count + 1)
        return await withCheckedContinuation { waiters.append($0) }
    }

    func release(_ item: Item) {
        if waiters.isEmpty {
            idle.append(item)
            inUse.record(all.count - idle.count)
        } else {
            waiters.removeFirst().resume(returning: item)
            waiting.record(waiters.count)
        }
    }
}

extension Pool {
    func with<T: Sendable>(_ body: @Sendable (Item) async throws -> T) async throws -> T {
        let item = await acquire()
        do {
            let result = try await body(item)
            release(item)
            return result
        } catch {
            release(item)
            throw error
        }
    }
}

public final class SQLiteStore: Database {
    public let engine = Engine.sqlite
    private let writer: Pool<SQLiteConnection>
    private let readers: Pool<SQLiteConnection>
    private let logger: Logger

    /// How a database file trades speed for durability and memory.
    public struct Tuning: Sendable {
        /// `NORMAL`: in WAL mode a commit survives a crash of the process (kill -9) but not
        /// necessarily of the machine. `FULL`: the WAL is synced at every commit, so a commit
        /// survives a power cut too.
        public var synchronous = "NORMAL"
        /// Page cache per connection, KiB.
        public var cacheKiB = 2_000
        /// WAL pages after which a commit also checkpoints.
        public var walAutocheckpoint = 1_000

        public init(synchronous: String = "NORMAL", cacheKiB: Int = 2_000, walAutocheckpoint: Int = 1_000) {
            self.synchronous = synchronous
            self.cacheKiB = cacheKiB
            self.walAutocheckpoint = walAutocheckpoint
        }

        /// The community's data: every write is a person's action, few and small.
        public static let community = Tuning()
        /// Device telemetry: a PUBACK promises the post is stored, so every commit is synced
        /// (group commit makes that one sync per thousands of posts). A larger cache and WAL keep
        /// the index pages a commit touches in memory and rewrite each fewer times.
        public static let telemetry = Tuning(synchronous: "FULL", cacheKiB: 32_768, walAutocheckpoint: 8_000)
    }

    /// Opens (creating if needed) the database file at `path`, in WAL mode.
    /// `name` labels the pools in /metrics (`sqlite_writer`, `telemetry_writer`, …).
    public static func open(
        path: String, readers: Int = 4, logger: Logger, name: String = "sqlite", tuning: Tuning = .community
    ) async throws -> SQLiteStore {
        // Residents' data: readable by the server's own user alone. SQLite gives the -wal and -shm
        // files the mode of the database file, so the file is made before SQLite opens it; one made
        // by an earlier version (0644) is narrowed, with its companions.
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        }
        let storage = SQLiteConnection.Storage.file(path: path)
        func connect() async throws -> SQLiteConnection {
            let conn = try await SQLiteConnection.open(storage: storage, logger: logger)
            // WAL lets readers run beside the writer; busy_timeout covers other processes.
            let pragmas = [
                "PRAGMA journal_mode = WAL", "PRAGMA synchronous = \(tuning.synchronous)",
                "PRAGMA cache_size = -\(tuning.cacheKiB)",
                "PRAGMA wal_autocheckpoint = \(tuning.walAutocheckpoint)", "PRAGMA busy_timeout = 5000",
                "PRAGMA foreign_keys = ON",
            ]
            for pragma in pragmas {
                try await conn.query(pragma, [], { _ in })
            }
            return conn
        }
        let writer = try await connect()
        var readerConnections: [SQLiteConnection] = []
        for _ in 0..<max(1, readers) { readerConnections.append(try await connect()) }
        return SQLiteStore(writer: writer, readers: readerConnections, logger: logger, name: name)
    }

    private init(writer: SQLiteConnection, readers: [SQLiteConnection], logger: Logger, name: String) {
        self.writer = Pool([writer], name: name + "_writer")
        self.readers = Pool(readers, name: name + "_readers")
        self.logger = logger
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await readers.with { conn in try await body(conn.sql(queryLogLevel: .trace)) }
    }

    /// A reader opened before a migration keeps the schema it read at its first statement. Its
    /// next `SELECT *` is compiled against that one (SQLiteNIO reads the column names before the
    /// first step, which is when SQLite notices the change and recompiles), so a column just added
    /// is missing from that one answer: the first device to sign in after an upgrade was refused.
    /// One statement stepped on each reader makes it read the new schema first.
    public func schemaChanged() async throws {
        var held: [SQLiteConnection] = []
        for _ in readers.all { held.append(await readers.acquire()) }
        var failure: (any Error)?
        for conn in held {
            do { try await conn.sql().raw("SELECT COUNT(*) AS n FROM sqlite_master").run() } catch {
                failure = failure ?? error
            }
        }
        for conn in held { await readers.release(conn) }
        if let failure { throw failure }
    }

    public func write<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await writer.with { conn in
            let db = conn.sql(queryLogLevel: .trace)
            try await db.raw("BEGIN IMMEDIATE").run()
            do {
                let result = try await body(db)
                try await db.raw("COMMIT").run()
                return result
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    public func close() async {
        for conn in await writer.all + readers.all { try? await conn.close() }
    }
}

public final class PostgresStore: Database {
    public let engine = Engine.postgres
    private let client: PostgresClient
    private let runner: Task<Void, Never>

    /// Connects to `url` (postgres://user:password@host:port/database). `searchPath` puts every
    /// table in one schema (tests use a schema each).
    public static func open(url: String, searchPath: String? = nil, logger: Logger) async throws -> PostgresStore {
        var configuration = try PostgresURL.configuration(url)
        if let searchPath {
            configuration.options.additionalStartupParameters = [("search_path", searchPath)]
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let store = PostgresStore(client: client)
        // Fail at start, with the server's message, rather than at the first request.
        _ = try await store.read { db in try await db.raw("SELECT 1 AS one").first() }
        return store
    }

    private init(client: PostgresClient) {
        self.client = client
        runner = Task { await client.run() }
    }

    /// Connections leased from PostgresClient's pool right now, for /metrics.
    private let leased = Atomic<Int>(0)
    private let inUse = Gauge(label: "linli_db_connections", dimensions: [("pool", "postgres"), ("state", "in_use")])

    private func leasing<T>(_ body: () async throws -> T) async throws -> T {
        inUse.record(leased.add(1, ordering: .relaxed).newValue)
        defer { inUse.record(leased.subtract(1, ordering: .relaxed).newValue) }
        return try await body()
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await leasing {
            try await client.withConnection { conn in try await body(conn.sql(queryLogLevel: .trace)) }
        }
    }

    public func write<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await leasing { try await transaction(body) }
    }

    private func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await client.withConnection { conn in
            let db = conn.sql(queryLogLevel: .trace)
            try await db.raw("BEGIN").run()
            do {
                let result = try await body(db)
                try await db.raw("COMMIT").run()
                return result
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    /// PostgreSQL plans each query against the schema as it is: nothing to do.
    public func schemaChanged() async throws {}

    public func close() async {
        runner.cancel()
        _ = await runner.value
    }
}

public enum PostgresURL {
    public static func configuration(_ text: String) throws -> PostgresClient.Configuration {
        guard let url = URLComponents(string: text), let scheme = url.scheme,
            ["postgres", "postgresql"].contains(scheme), let host = url.host, !host.isEmpty
        else {
            throw ValidationFailure("postgres-url", "must look like postgres://user:password@host:5432/database")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        let tlsMode = url.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable"
        let tls: PostgresClient.Configuration.TLS
        switch tlsMode {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require": tls = .require(.makeClientConfiguration())
        default: throw ValidationFailure("postgres-url", "sslmode must be disable, prefer or require")
        }
        return PostgresClient.Configuration(
            host: host, port: url.port ?? 5432, username: url.user ?? "postgres",
            password: url.password, database: database.isEmpty ? nil : database, tls: tls)
    }
}
