import Foundation
import LinliCore
import Logging
import Testing

@testable import LinliServer
@testable import LinliStorage

@Suite("Data at rest")
struct DataAtRestTests {
    func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    /// The database files are the server user's alone, new ones and those an older version left.
    @Test func sqliteFilesAreOwnerOnly() async throws {
        let folder = NSTemporaryDirectory() + "linli-at-rest-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var quiet = Logger(label: "at-rest")
        quiet.logLevel = .critical
        let path = folder + "/linli.sqlite"
        let store = try await SQLiteStore.open(path: path, readers: 1, logger: quiet)
        try await store.write { db in try await db.raw("CREATE TABLE t (x INTEGER)").run() }
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            #expect(try mode(file) == 0o600, "\(file)")
        }
        await store.close()
        // A file an earlier version made world-readable is narrowed at the next opening.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let again = try await SQLiteStore.open(path: path, readers: 1, logger: quiet)
        #expect(try mode(path) == 0o600)
        await again.close()
    }

    @Test func theSecretMayLiveOutsideTheDataFolder() throws {
        let folder = NSTemporaryDirectory() + "linli-secret-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/elsewhere.key"
        let secret = FieldCipher.randomSecret()
        try Data(secret.base64EncodedString().utf8).write(to: URL(fileURLWithPath: file))
        let read = try DataFolder.secret(directory: folder + "/data", environment: ["LINLI_SECRET_KEY_FILE": file])
        #expect(read == secret)
        #expect(!FileManager.default.fileExists(atPath: folder + "/data/secret.key"), "none made in the data folder")
        #expect(throws: ServerConfiguration.Invalid.self) {
            try DataFolder.secret(directory: folder, environment: ["LINLI_SECRET_KEY_FILE": folder + "/missing.key"])
        }
        // Made on first start in the data folder: owner-only.
        let made = try DataFolder.secret(directory: folder, environment: [:])
        #expect(made.count == 32)
        #expect(try mode(folder + "/secret.key") == 0o600)
    }
}
