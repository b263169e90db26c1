import Foundation
import LinliThings

/// Device labels (Alibaba's 设备标签): facts a device states about itself as keys and values —
/// its maker, model, batch, the module it carries — sent with `thing.deviceinfo.update` as
/// `[{"attrKey": "vendor", "attrValue": "Hikvision"}]` and taken back with
/// `thing.deviceinfo.delete` as `[{"attrKey": "vendor"}]`. They are not the operator's tags.
public enum AlinkLabels {
    /// Entries one request may carry, and labels one device may hold, as Alibaba allows.
    public static let perRequest = 200
    public static let perDevice = 100
    /// A key's length, and a value's width (a Chinese or Japanese character counts two).
    public static let keyLength = 30
    public static let valueWidth = 128

    /// A refused request: the entry and field at fault, and why.
    public struct Fault: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// The labels an update sets, in order (a key given twice: the last wins).
    public static func parseUpdate(_ params: JSONValue) -> Result<[(key: String, value: String)], Fault> {
        entries(params).flatMap { items in
            var labels: [(key: String, value: String)] = []
            for (i, item) in items.enumerated() {
                let key: String
                switch checkedKey(item, at: i) {
                case let .success(k): key = k
                case let .failure(fault): return .failure(fault)
                }
                let path = "params[\(i)].attrValue"
                let value: String
                switch item["attrValue"] {
                case let .string(s)?: value = s
                // Link Kit passes whatever the program gave; a number is a value written as text.
                case let .int(n)?: value = String(n)
                case let .double(d)?: value = String(d)
                case nil: return .failure(Fault(path: path, reason: "is required"))
                default: return .failure(Fault(path: path, reason: "must be text"))
                }
                guard !value.isEmpty, width(value) <= valueWidth else {
                    return .failure(
                        Fault(
                            path: path,
                            reason: "must be 1 to \(valueWidth) wide (a Chinese or Japanese character counts two)"))
                }
                guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    return .failure(Fault(path: path, reason: "must not hold control characters"))
                }
                labels.append((key, value))
            }
            return .success(labels)
        }
    }

    /// The keys a delete takes out.
    public static func parseDelete(_ params: JSONValue) -> Result<[String], Fault> {
        entries(params).flatMap { items in
            var keys: [String] = []
            for (i, item) in items.enumerated() {
                switch checkedKey(item, at: i) {
                case let .success(k): keys.append(k)
                case let .failure(fault): return .failure(fault)
                }
            }
            return .success(keys)
        }
    }

    private static func entries(_ params: JSONValue) -> Result<[JSONValue], Fault> {
        guard case let .array(items) = params else {
            return .failure(Fault(path: "params", reason: "must be a list of {attrKey, attrValue}"))
        }
        guard !items.isEmpty, items.count <= perRequest else {
            return .failure(Fault(path: "params", reason: "must hold 1 to \(perRequest) entries"))
        }
        return .success(items)
    }

    /// Letters, digits and `_-#@%&*.`, at most 30 of them, as Alibaba allows.
    private static func checkedKey(_ item: JSONValue, at i: Int) -> Result<String, Fault> {
        let path = "params[\(i)].attrKey"
        guard case .object = item else {
            return .failure(Fault(path: "params[\(i)]", reason: "must be an object with attrKey"))
        }
        guard case let .string(key)? = item["attrKey"] else {
            return .failure(Fault(path: path, reason: "is required, as text"))
        }
        let allowed = Set("_-#@%&*.".unicodeScalars)
        guard !key.isEmpty, key.unicodeScalars.count <= keyLength,
            key.unicodeScalars.allSatisfy({
                ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || allowed.contains($0)
            })
        else { return .failure(Fault(path: path, reason: "must be 1 to \(keyLength) letters, digits or _-#@%&*.")) }
        return .success(key)
    }

    /// Alibaba's width: ASCII counts one, anything wider (Chinese, Japanese) two.
    static func width(_ text: String) -> Int {
        text.unicodeScalars.reduce(0) { $0 + ($1.isASCII ? 1 : 2) }
    }
}
