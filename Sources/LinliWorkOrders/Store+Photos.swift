import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

public struct WorkOrderPhoto: Codable, Sendable, Equatable {
    public var id: ID
    public var workOrderId: ID
    public var communityId: ID
    public var contentType: String
    public var size: Int
    /// Relative to the attachments folder.
    public var file: String
    public var uploadedBy: String
    public var createdAt: Millis
}

extension WorkOrderPhoto: Record { public static let table = "work_order_photos" }

/// Why a photo is refused.
public enum PhotoFault: Error, Equatable, CustomStringConvertible {
    case notAnImage, tooLarge(Int), tooMany(Int)
    public var description: String {
        switch self {
        case .notAnImage: "is not a JPEG, PNG or WebP image"
        case let .tooLarge(limit): "is larger than \(limit / 1_048_576) MiB"
        case let .tooMany(limit): "a work order has at most \(limit) photos"
        }
    }
}

extension Store {
    public static let photoLimit = 5 * 1_048_576
    public static let photosPerWorkOrder = 6

    /// The image type by its first bytes, whatever the upload claims.
    public static func imageType(_ bytes: [UInt8]) -> (contentType: String, ext: String)? {
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return ("image/jpeg", "jpg") }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return ("image/png", "png") }
        if bytes.count >= 12, bytes.starts(with: Array("RIFF".utf8)), Array(bytes[8..<12]) == Array("WEBP".utf8) {
            return ("image/webp", "webp")
        }
        // HEIC, as iPhones take photos: an ISO base media file whose brand is one of HEIF's.
        if bytes.count >= 12, Array(bytes[4..<8]) == Array("ftyp".utf8),
            ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"].contains(
                String(decoding: bytes[8..<12], as: UTF8.self))
        {
            return ("image/heic", "heic")
        }
        return nil
    }

    /// Checks and keeps a photo of a work order: it arrived in a temporary file of `folder`
    /// (streamed there, never whole in memory), is told by its first bytes, then renamed into
    /// place (so a crash leaves no half file under a row) and recorded.
    public func addPhoto(to order: WorkOrder, file: UploadedFile, folder: String, actor: Principal) async throws
        -> WorkOrderPhoto
    {
        guard file.size <= Self.photoLimit else { throw PhotoFault.tooLarge(Self.photoLimit) }
        guard let (type, ext) = Self.imageType(file.head) else { throw PhotoFault.notAnImage }
        let count = try await read { db in
            try await db.count("SELECT COUNT(*) AS n FROM work_order_photos WHERE work_order_id = \(bind: order.id)")
        }
        guard count < Self.photosPerWorkOrder else { throw PhotoFault.tooMany(Self.photosPerWorkOrder) }
        let id = newID()
        let relative = "work-orders/\(order.id)/\(id).\(ext)"
        try file.keep(at: URL(fileURLWithPath: folder).appendingPathComponent(relative))
        let photo = WorkOrderPhoto(
            id: id, workOrderId: order.id, communityId: order.communityId,
            contentType: type, size: file.size, file: relative, uploadedBy: actor.name, createdAt: nowMillis())
        try await write { db in
            try await db.insert(photo)
            try await Change.record(
                db, actor: actor, communityId: order.communityId, type: "workorder.photo", subjectType: "workorder",
                subjectId: order.id,
                after: ["photo": id, "type": type, "size": "\(file.size)"])
        }
        return photo
    }

    /// A photo already in memory (the demo's, tests'), kept as an upload is.
    public func addPhoto(to order: WorkOrder, bytes: [UInt8], folder: String, actor: Principal) async throws
        -> WorkOrderPhoto
    {
        try await addPhoto(to: order, file: UploadWriter.file(bytes, folder: folder), folder: folder, actor: actor)
    }

    public func photos(of order: WorkOrder) async throws -> [WorkOrderPhoto] {
        try await read { db in
            try await db.all(
                WorkOrderPhoto.self,
                "SELECT * FROM work_order_photos WHERE work_order_id = \(bind: order.id) ORDER BY created_at, id")
        }
    }
}
