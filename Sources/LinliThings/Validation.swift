import Foundation

/// Why a value from a device (or for a device) does not fit its thing model.
public struct ValueError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case unknownIdentifier
        case typeMismatch
        case outOfRange
        case tooLong
        case notWritable
        case missing
    }
    public var path: String
    public var kind: Kind
    public var reason: String
    public var description: String { "\(path): \(reason)" }
    public init(path: String, kind: Kind, reason: String) {
        self.path = path
        self.kind = kind
        self.reason = reason
    }
}

extension ThingModel {
    /// Checks a property post (`{"temp": 21.5}` or `{"temp": {"value": 21.5, "time": …}}`), or a
    /// property set when `writing` (only rw/w properties). Returns every fault, not just the first.
    /// `receivedAt`: when the post arrived (UTC milliseconds), against which a device's `time` is
    /// checked (`measurementTime`).
    public func validateProperties(_ params: JSONValue, writing: Bool = false, receivedAt: Int64? = nil) -> [ValueError]
    {
        guard case let .object(values) = params else {
            return [ValueError(path: "params", kind: .typeMismatch, reason: "must be an object of property values")]
        }
        var faults: [ValueError] = []
        for (identifier, raw) in values.sorted(by: { $0.key < $1.key }) {
            guard let property = property(identifier) else {
                faults.append(
                    ValueError(path: identifier, kind: .unknownIdentifier, reason: "is not a property of this product"))
                continue
            }
            if writing, property.accessMode == .r {
                faults.append(ValueError(path: identifier, kind: .notWritable, reason: "is read-only"))
                continue
            }
            var value = raw
            if case let .object(wrapped) = raw, let inner = wrapped["value"], !(property.dataType.isStructure) {
                value = inner
                if !writing, let receivedAt {
                    do {
                        _ = try Self.measurementTime(
                            wrapped["time"], receivedAt: receivedAt, path: "\(identifier).time")
                    } catch { faults.append(error) }
                }
            }
            do { try property.dataType.validate(value, path: identifier) } catch { faults.append(error) }
        }
        return faults
    }

    /// The earliest measurement time a device may give: 2000-01-01. Smaller values are not
    /// times at all but counters (seconds since power-on from a device without a clock).
    public static let earliestMeasurement: Int64 = 946_684_800_000
    /// How far ahead of the server's clock a device's time may be. More than that is a wrong
    /// clock or a local time sent as UTC; stored, it would outrank every later value of the
    /// property in the shadow (newest measurement wins), so it is refused instead.
    public static let measurementLead: Int64 = 3_600_000

    /// When a device says it measured a value: Alink's `time`, UTC milliseconds. Seconds are
    /// taken too (anything below 10^11, which as milliseconds would be 1973), because devices
    /// send them. No `time` means the moment the post arrived.
    public static func measurementTime(_ time: JSONValue?, receivedAt: Int64, path: String = "time") throws(ValueError)
        -> Int64
    {
        guard let time else { return receivedAt }
        guard case let .int(raw) = time else {
            throw ValueError(path: path, kind: .typeMismatch, reason: "must be an integer: UTC milliseconds")
        }
        let millis = raw < 100_000_000_000 ? raw.multipliedReportingOverflow(by: 1000).partialValue : raw
        if raw < 0 || millis < earliestMeasurement {
            throw ValueError(path: path, kind: .outOfRange, reason: "must be UTC milliseconds from 2000 on")
        }
        if millis > receivedAt + measurementLead {
            throw ValueError(path: path, kind: .outOfRange, reason: "is more than an hour ahead of the server's clock")
        }
        return millis
    }

    /// Checks an event's output values, or a service's input values.
    public func validate(fields: [Field], _ params: JSONValue, requireAll: Bool = false) -> [ValueError] {
        guard case let .object(values) = params else {
            return [ValueError(path: "params", kind: .typeMismatch, reason: "must be an object")]
        }
        var faults: [ValueError] = []
        for (identifier, value) in values.sorted(by: { $0.key < $1.key }) {
            guard let field = fields.first(where: { $0.identifier == identifier }) else {
                faults.append(ValueError(path: identifier, kind: .unknownIdentifier, reason: "is not a parameter here"))
                continue
            }
            do { try field.dataType.validate(value, path: identifier) } catch { faults.append(error) }
        }
        if requireAll {
            for field in fields where values[field.identifier] == nil {
                faults.append(ValueError(path: field.identifier, kind: .missing, reason: "is required"))
            }
        }
        return faults
    }
}

extension ThingModel.DataType {
    var isStructure: Bool { if case .structure = self { return true } else { return false } }

    public func validate(_ value: JSONValue, path: String) throws(ValueError) {
        func mismatch(_ expected: String) -> ValueError {
            ValueError(path: path, kind: .typeMismatch, reason: "must be \(expected)")
        }
        func inRange(_ n: Double, _ spec: ThingModel.NumberSpec) throws(ValueError) {
            if let lo = spec.min, n < lo {
                throw ValueError(path: path, kind: .outOfRange, reason: "must be at least \(lo.clean)")
            }
            if let hi = spec.max, n > hi {
                throw ValueError(path: path, kind: .outOfRange, reason: "must be at most \(hi.clean)")
            }
        }
        switch self {
        case let .int(spec):
            guard case let .int(i) = value else { throw mismatch("an integer") }
            if i < Int64(Int32.min) || i > Int64(Int32.max) {
                throw ValueError(path: path, kind: .outOfRange, reason: "must fit in 32 bits")
            }
            try inRange(Double(i), spec)
        case let .float(spec), let .double(spec):
            let n: Double
            switch value {
            case let .int(i): n = Double(i)
            case let .double(d): n = d
            default: throw mismatch("a number")
            }
            try inRange(n, spec)
        case let .text(maxLength):
            guard case let .string(s) = value else { throw mismatch("a string") }
            if s.count > maxLength {
                throw ValueError(path: path, kind: .tooLong, reason: "must be at most \(maxLength) characters")
            }
        case .date:
            // UTC milliseconds, as a string of digits (Alink's form) or a number.
            switch value {
            case let .string(s) where !s.isEmpty && s.count <= 13 && s.allSatisfy({ $0.isASCII && $0.isNumber }): break
            case let .int(i) where i >= 0: break
            default: throw mismatch("a time in UTC milliseconds")
            }
        case .bool:
            switch value {
            case .int(0), .int(1), .bool: break
            default: throw mismatch("0 or 1")
            }
        case let .enumeration(names):
            guard case let .int(i) = value else {
                throw mismatch("one of \(names.keys.sorted().map(String.init).joined(separator: ", "))")
            }
            if names[Int(i)] == nil {
                throw ValueError(
                    path: path, kind: .outOfRange,
                    reason: "must be one of \(names.keys.sorted().map(String.init).joined(separator: ", "))")
            }
        case let .structure(members):
            guard case let .object(values) = value else { throw mismatch("an object") }
            for (key, member) in values.sorted(by: { $0.key < $1.key }) {
                guard let field = members.first(where: { $0.identifier == key }) else {
                    throw ValueError(
                        path: "\(path).\(key)", kind: .unknownIdentifier, reason: "is not a member of this struct")
                }
                try field.dataType.validate(member, path: "\(path).\(key)")
            }
        case let .array(size, item):
            guard case let .array(items) = value else { throw mismatch("an array") }
            if items.count > size {
                throw ValueError(path: path, kind: .tooLong, reason: "must hold at most \(size) items")
            }
            for (i, element) in items.enumerated() { try item.validate(element, path: "\(path)[\(i)]") }
        }
    }
}

extension ThingModel.DataType {
    /// The value in Alink's own form: a bool as 0 or 1, also inside structs and arrays. People
    /// and other systems write `true`; devices expect the number.
    public func normalized(_ value: JSONValue) -> JSONValue {
        switch (self, value) {
        case let (.bool, .bool(b)):
            return .int(b ? 1 : 0)
        case let (.structure(members), .object(values)):
            var out = values
            for (key, member) in values {
                if let field = members.first(where: { $0.identifier == key }) {
                    out[key] = field.dataType.normalized(member)
                }
            }
            return .object(out)
        case let (.array(_, item), .array(items)):
            return .array(items.map(item.normalized))
        default:
            return value
        }
    }
}

extension ThingModel {
    /// `values` (an object of field values) with each in Alink's form (`DataType.normalized`).
    public func normalized(_ values: JSONValue, fields: [Field]) -> JSONValue {
        DataType.structure(fields).normalized(values)
    }

    /// Property values (an object) with each in Alink's form.
    public func normalizedProperties(_ values: JSONValue) -> JSONValue {
        guard case let .object(object) = values else { return values }
        var out = object
        for (key, value) in object {
            if let property = property(key) { out[key] = property.dataType.normalized(value) }
        }
        return .object(out)
    }
}

extension Double {
    var clean: String { rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}
