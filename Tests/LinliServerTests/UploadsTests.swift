import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliDeviceRegistry
@testable import LinliDevices
@testable import LinliHTTP
@testable import LinliStorage
@testable import LinliWorkOrders

/// Uploads streamed to disk arrive byte for byte, by each way in: a firmware package as the raw
/// body and in the console's form, a photo in the portal's form.
@Suite("Uploads")
struct UploadsTests {
    static func random(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    static func form(_ boundary: String, fields: [(String, String)], file: (name: String, bytes: [UInt8])?)
        -> ByteBuffer
    {
        var body: [UInt8] = []
        for (name, value) in fields {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        if let file {
            body += Array(
                "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(file.name)\"; filename=\"f.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    .utf8)
            body += file.bytes
            body += Array("\r\n".utf8)
        }
        body += Array("--\(boundary)--\r\n".utf8)
        return ByteBuffer(bytes: body)
    }

    static func stored(_ fixture: Fixture, _ relative: String) throws -> [UInt8] {
        let folder = URL(fileURLWithPath: fixture.services.configuration.dataDirectory).appendingPathComponent(
            "attachments")
        return Array(try Data(contentsOf: folder.appendingPathComponent(relative)))
    }

    /// What a crash left half-written is removed when the server starts; other files stay.
    @Test func uploadsCutOffByACrashAreClearedAtStart() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("linli-incoming-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let writer = try UploadWriter(folder: folder.path)
        try writer.write([1, 2, 3])
        let kept = try UploadWriter.file([4, 5], folder: folder.path)
        let photo = folder.appendingPathComponent("photos/a.jpg")
        try kept.keep(at: photo)
        let incoming = folder.appendingPathComponent("incoming")
        #expect(try FileManager.default.contentsOfDirectory(atPath: incoming.path).count == 1)
        UploadWriter.clearIncoming(folder: folder.path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: incoming.path).isEmpty)
        #expect(try Data(contentsOf: photo) == Data([4, 5]))
        _ = writer
    }

    @Test func largeFirmwareIsStoredByteExactFromTheBodyAndFromTheForm() async throws {
        try await withApp { client, fixture in
            let staff = APIUser(client, fixture, as: "staff")
            let product = try await staff.call(
                "/api/v1/communities/\(fixture.community.id)/products", .post, ["library": "smoke_detector"],
                expect: .created)
            let pk = try #require(product["productKey"] as? String)

            let package = Self.random(12 << 20)
            let added = try await client.execute(
                uri: "/api/v1/products/\(pk)/firmware?version=2.0.0", method: .post,
                headers: fixture.bearer("staff").merging([.contentType: "application/octet-stream"]),
                body: ByteBuffer(bytes: package)
            ) { r in
                #expect(r.status == .created, "\(r.text)")
                return try r.json()
            }
            #expect(added["size"] as? Int == package.count)
            #expect(added["sha256"] as? String == Digest.sha256(package))
            #expect(added["md5"] as? String == Digest.md5(package))
            let id = try #require(added["id"] as? String)
            let first = try #require(try await fixture.store.firmware(id: id))
            #expect(try Self.stored(fixture, first.file) == package)

            let tooLarge = try await client.execute(
                uri: "/api/v1/products/\(pk)/firmware?version=2.0.9", method: .post,
                headers: fixture.bearer("staff").merging([.contentType: "application/octet-stream"]),
                body: ByteBuffer(repeating: 1, count: Store.firmwareLimit + 2)
            ) { $0.status }
            #expect(tooLarge == .contentTooLarge)

            let session = try await WebTests.signIn(client, "staff")
            let boundary = "linli-\(UUID().uuidString)"
            let formPackage = Self.random(3 << 20 + 17)
            let posted = try await client.execute(
                uri: "/console/products/\(pk)/firmware", method: .post,
                headers: [.cookie: session.cookie, .contentType: "multipart/form-data; boundary=\(boundary)"],
                body: Self.form(
                    boundary, fields: [("_csrf", session.csrf), ("version", "2.1.0"), ("module", "default")],
                    file: ("file", formPackage))
            ) { r in (r.status, r.headers[.location] ?? "") }
            #expect(posted.0 == .seeOther || posted.0 == .found, "\(posted)")
            let second = try #require(
                try await fixture.store.firmware(productKey: pk).first { $0.version == "2.1.0" })
            #expect(second.size == formPackage.count && second.sha256 == Digest.sha256(formPackage))
            #expect(try Self.stored(fixture, second.file) == formPackage)

            let forged = try await client.execute(
                uri: "/console/products/\(pk)/firmware", method: .post,
                headers: [.cookie: session.cookie, .contentType: "multipart/form-data; boundary=\(boundary)"],
                body: Self.form(
                    boundary, fields: [("_csrf", "not-the-token"), ("version", "2.2.0")], file: ("file", [1, 2, 3]))
            ) { $0.status }
            #expect(forged == .forbidden)
            let broken = try await client.execute(
                uri: "/console/products/\(pk)/firmware", method: .post,
                headers: [.cookie: session.cookie, .contentType: "multipart/form-data; boundary=\(boundary)"],
                body: ByteBuffer(string: "--\(boundary)\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n")
            ) { r in (r.status, r.text) }
            #expect(broken.0 == .badRequest)
            #expect(broken.1.contains("multipart"), "the console's error page says what is wrong")
            #expect(try await fixture.store.firmware(productKey: pk).count == 2, "nothing else was kept")
        }
    }

    @Test func aResidentsPhotoIsStoredByteExact() async throws {
        try await withApp { client, fixture in
            let session = try await WebTests.signIn(client, "resident")
            let boundary = "linli-\(UUID().uuidString)"
            let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Self.random(2 << 20)
            let location = try await client.execute(
                uri: "/app/reports", method: .post,
                headers: [.cookie: session.cookie, .contentType: "multipart/form-data; boundary=\(boundary)"],
                body: Self.form(
                    boundary,
                    fields: [
                        ("_csrf", session.csrf), ("category", "repair"), ("title", "楼道灯坏了"), ("description", "三楼"),
                    ], file: ("photo", png))
            ) { r in
                #expect(r.status == .seeOther || r.status == .found)
                return r.headers[.location] ?? ""
            }
            #expect(location.hasPrefix("/app/reports/") && !location.contains("photo="), "\(location)")
            let order = try #require(
                try await fixture.store.workOrder(id: String(location.dropFirst("/app/reports/".count))))
            let photos = try await fixture.store.photos(of: order)
            #expect(photos.count == 1 && photos.first?.size == png.count)
            let photo = try #require(photos.first)
            #expect(try Self.stored(fixture, photo.file) == png)
        }
    }
}
