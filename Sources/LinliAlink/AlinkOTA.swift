import Foundation
import LinliThings

/// Alink's firmware upgrades (OTA): the device says its version on `/ota/device/inform/{pk}/{dn}`,
/// the platform offers a package on `/ota/device/upgrade/{pk}/{dn}` (or answers the device's
/// `thing.ota.firmware.get`), the device downloads it over HTTP, checks its digest, and reports
/// how far it got on `/ota/device/progress/{pk}/{dn}` until it says its new version.
public enum AlinkOTA {
    public static func upgradeTopic(_ productKey: String, _ deviceName: String) -> String {
        "/ota/device/upgrade/\(productKey)/\(deviceName)"
    }
    public static func progressTopic(_ productKey: String, _ deviceName: String) -> String {
        "/ota/device/progress/\(productKey)/\(deviceName)"
    }

    /// What a device is offered: the package's version, module, size, where to download it and
    /// its digests. Link Kit checks `sign` by `signMethod` (SHA256 or Md5); older SDKs read `md5`.
    public struct Package: Sendable, Equatable {
        public var version: String
        public var module: String
        public var size: Int
        public var url: String
        public var sha256: String
        public var md5: String
        public init(version: String, module: String, size: Int, url: String, sha256: String, md5: String) {
            self.version = version
            self.module = module
            self.size = size
            self.url = url
            self.sha256 = sha256
            self.md5 = md5
        }

        public var json: JSONValue {
            .object([
                "version": .string(version), "module": .string(module), "size": .int(Int64(size)), "url": .string(url),
                "signMethod": .string("SHA256"), "sign": .string(sha256), "md5": .string(md5),
            ])
        }
    }

    /// The offer pushed on the upgrade topic (Alibaba's `code` is text here, `"1000"`).
    public static func offer(_ package: Package, id: Int64) -> Data {
        JSONValue.object(["code": .string("1000"), "data": package.json, "id": .int(id), "message": .string("success")])
            .serialized()
    }

    /// How far a device got, as it reports: `step` 1 to 100 while it goes, or a failure: -1
    /// upgrade failed, -2 download failed, -3 digest mismatch, -4 flashing failed.
    public struct Progress: Sendable, Equatable {
        public var step: Int
        public var detail: String
        public var module: String
        public var failed: Bool { step < 0 }
    }

    /// Reads a progress report's params (`{"step": "95", "desc": "…", "module": "MCU"}`; Link Kit
    /// and the C SDK write the step as text, some firmware as a number); nil when it is not one.
    public static func progress(_ params: JSONValue) -> Progress? {
        let step: Int?
        switch params["step"] {
        case let .string(s)?: step = Int(s.trimmingCharacters(in: .whitespaces))
        case let .int(n)?: step = Int(exactly: n)
        default: step = nil
        }
        guard let step, (-4...100).contains(step), step != 0 else { return nil }
        let detail = String((params["desc"]?.text ?? "").prefix(200))
        let module = params["module"]?.text.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
        return Progress(step: step, detail: detail, module: module)
    }

    /// The words Alibaba gives each failing step, for a report that says nothing of its own.
    public static func failure(_ step: Int) -> String {
        switch step {
        case -2: "download failed"
        case -3: "digest mismatch"
        case -4: "flashing failed"
        default: "upgrade failed"
        }
    }
}
