import Foundation

/// A product's thing model in Alibaba IoT's TSL form: properties (state), events (what the device
/// reports) and services (what can be asked of it). Parsed strictly: a malformed model is refused
/// with the path of the fault, so applications never meet vendor surprises.
public struct ThingModel: Sendable, Equatable {
    public var productKey: String?
    public var properties: [Property]
    public var events: [Event]
    public var services: [Service]

    public enum AccessMode: String, Sendable { case r, rw, w }
    public enum EventType: String, Sendable { case info, alert, error }
    public enum CallType: String, Sendable { case sync, async }

    public struct Property: Sendable, Equatable {
        public var identifier: String
        public var name: String
        public var accessMode: AccessMode
        public var required: Bool
        public var dataType: DataType
    }

    public struct Field: Sendable, Equatable {
        public var identifier: String
        public var name: String
        public var dataType: DataType
    }

    public struct Event: Sendable, Equatable {
        public var identifier: String
        public var name: String
        public var type: EventType
        public var required: Bool
        public var method: String
        public var outputData: [Field]
    }

    public struct Service: Sendable, Equatable {
        public var identifier: String
        public var name: String
        public var callType: CallType
        public var required: Bool
        public var method: String
        public var inputData: [Field]
        public var outputData: [Field]
    }

    public indirect enum DataType: Sendable, Equatable {
        case int(NumberSpec)
        case float(NumberSpec)
        case double(NumberSpec)
        case text(maxLength: Int)
        case date
        case bool(names: [String: String])
        case enumeration(names: [Int: String])
        case structure([Field])
        case array(size: Int, item: DataType)

        public var typeName: String {
            switch self {
            case .int: "int"
            case .float: "float"
            case .double: "double"
            case .text: "text"
            case .date: "date"
            case .bool: "bool"
            case .enumeration: "enum"
            case .structure: "struct"
            case .array: "array"
            }
        }
    }

    public struct NumberSpec: Sendable, Equatable {
        public var min: Double?
        public var max: Double?
        public var step: Double?
        public var unit: String?
        public var unitName: String?
    }

    public func property(_ identifier: String) -> Property? { properties.first { $0.identifier == identifier } }
    public func event(_ identifier: String) -> Event? { events.first { $0.identifier == identifier } }
    public func service(_ identifier: String) -> Service? { services.first { $0.identifier == identifier } }
}

/// Why a TSL document was refused: the JSON path of the fault and what is wrong there.
public struct ThingModelError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}
