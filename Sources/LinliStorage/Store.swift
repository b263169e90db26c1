import Foundation
import LinliCore
import Logging
import PostgresNIO
import SQLKit

/// The repositories of Linli over one database. Every write runs in a transaction that also appends
/// its domain event and audit line; every read takes the caller's scope.
public struct Store: Sendable {
    public let database: any Database
    public let cipher: FieldCipher
    public let signal: EventSignal

    public init(database: any Database, cipher: FieldCipher, signal: EventSignal = EventSignal()) {
        self.database = database
        self.cipher = cipher
        self.signal = signal
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await database.read(body)
    }

    public func write<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let result = try await database.write(body)
        await signal.notify()
        return result
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
