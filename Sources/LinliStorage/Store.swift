import Foundation
import LinliCore
import Logging
import PostgresNIO
import SQLKit
import Synchronization

/// The repositories of Linli over one database. Every write runs in a transaction that also appends
/// its domain event and audit line; every read takes the caller's scope.
public struct Store: Sendable {
    public let database: any Database
    /// Where telemetry, reported values and diagnosis counters go: on SQLite a second file, on
    /// PostgreSQL the same database. Writes here are not domain events and skip the change signal.
    public let telemetry: any Database
    public let cipher: FieldCipher
    public let signal: EventSignal
    /// Counts committed writes in this process; cached reads are valid only for the count they saw.
    public let changes = ChangeCounter()
    /// What the modules keep per store (a device module's write queues, say), by type.
    public let attachments = Attachments()
    private let separateTelemetry: Bool

    public init(
        database: any Database, telemetry: (any Database)? = nil, cipher: FieldCipher,
        signal: EventSignal = EventSignal()
    ) {
        self.database = database
        self.telemetry = telemetry ?? database
        separateTelemetry = telemetry != nil
        self.cipher = cipher
        self.signal = signal
    }

    /// Closes the database, and telemetry's when it is a database of its own.
    public func close() async {
        await database.close()
        if separateTelemetry { await telemetry.close() }
    }

    /// Appended to a SELECT whose row a write transaction then changes. PostgreSQL runs writes side
    /// by side: the row is locked until commit, so changes queue there instead of computing on the
    /// same row and all but one going round again. SQLite has one writer and needs nothing.
    public var rowLock: SQLQueryString { database.engine == .postgres ? " FOR UPDATE" : "" }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await database.read(body)
    }

    /// The one row `query` finds (a row by its id within the caller's scope), else
    /// `StoreError.notFound(what)`, which the API answers with 404 naming `what`.
    public func one<R: Record>(_ type: R.Type, _ what: String, _ query: SQLQueryString) async throws -> R {
        guard let found = try await read({ db in try await db.all(type, query).first }) else {
            throw StoreError.notFound(what)
        }
        return found
    }

    public func write<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        do {
            let result = try await database.write(body)
            changes.bump()
            await signal.notify()
            return result
        } catch {
            // A failed write may still have changed nothing, or (on a lost connection) something: assume it did.
            changes.bump()
            throw error
        }
    }
}

/// A storage-level refusal the API turns into 404 or 409.
public enum StoreError: Error, Equatable {
    case notFound(String)
    case conflict(field: String, reason: String)
}

extension Error {
    /// Unique-constraint violations on either engine, so the API can answer 409 instead of 500.
    public var isUniqueViolation: Bool {
        if let psql = self as? PSQLError { return psql.serverInfo?[.sqlState] == "23505" }
        return String(reflecting: self).contains("UNIQUE constraint failed")
    }
}

/// A monotonically increasing count of writes.
public final class ChangeCounter: Sendable {
    private let value = Atomic<UInt64>(0)
    public init() {}
    public var current: UInt64 { value.load(ordering: .acquiring) }
    public func bump() { value.add(1, ordering: .releasing) }
}
