import Foundation

/// Reading and writing TSL JSON.
extension ThingModel {
    /// Identifiers: letters, digits and underscores, starting with a letter or underscore, at most
    /// 50 characters — what the TSL editor allows.
    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, s.count <= 50 else { return false }
        let ascii = s.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_") }
        return ascii && (first == "_" || CharacterSet.letters.contains(first))
    }

    /// Parses a TSL document (the JSON text exported by Alibaba IoT or written by hand).
    public static func parse(tsl data: Data) throws(ThingModelError) -> ThingModel {
        guard let json = JSONValue.parse(data) else { throw ThingModelError(path: "$", reason: "is not valid JSON") }
        return try parse(json)
    }

    /// Reads a product's model back from the store; nil when it cannot be read. Number specs are
    /// read as they were accepted: a model stored before int bounds had to be 32-bit integers and
    /// steps above 0 still loads, so the devices of its product keep being checked.
    public static func parse(stored data: Data) -> ThingModel? {
        guard let json = JSONValue.parse(data) else { return nil }
        return try? parse(json, numberSpecs: .asStored)
    }

    /// How strictly the bounds and step of number types are read.
    enum NumberSpecRules {
        /// For a model being accepted: int bounds and steps are integer literals that fit in 32
        /// bits (a device's int is a 32-bit value), float and double bounds finite, every step above 0.
        case strict
        /// For a model accepted before those rules: any finite number, a step of 0 allowed.
        case asStored
    }

    public static func parse(_ json: JSONValue) throws(ThingModelError) -> ThingModel {
        try parse(json, numberSpecs: .strict)
    }

    static func parse(_ json: JSONValue, numberSpecs rules: NumberSpecRules) throws(ThingModelError) -> ThingModel {
        guard case let .object(root) = json else { throw ThingModelError(path: "$", reason: "must be an object") }
        var model = ThingModel(
            productKey: root["profile"]?["productKey"]?.text, properties: [], events: [], services: [])
        func list(_ key: String) throws(ThingModelError) -> [JSONValue] {
            guard let value = root[key] else { return [] }
            guard case let .array(items) = value else {
                throw ThingModelError(path: "$.\(key)", reason: "must be an array")
            }
            return items
        }
        var seen = Set<String>()
        for (i, item) in try list("properties").enumerated() {
            let path = "$.properties[\(i)]"
            let (identifier, name) = try names(item, path)
            if !seen.insert(identifier).inserted {
                throw ThingModelError(path: "\(path).identifier", reason: "'\(identifier)' is defined twice")
            }
            let modeText = item["accessMode"]?.text ?? "rw"
            guard let mode = AccessMode(rawValue: modeText) else {
                throw ThingModelError(path: "\(path).accessMode", reason: "must be r, rw or w")
            }
            guard let dataType = item["dataType"] else {
                throw ThingModelError(path: "\(path).dataType", reason: "is required")
            }
            model.properties.append(
                Property(
                    identifier: identifier, name: name, accessMode: mode, required: item["required"] == .bool(true),
                    dataType: try parseType(dataType, "\(path).dataType", depth: 0, rules)))
        }
        seen = []
        for (i, item) in try list("events").enumerated() {
            let path = "$.events[\(i)]"
            let (identifier, name) = try names(item, path)
            if !seen.insert(identifier).inserted {
                throw ThingModelError(path: "\(path).identifier", reason: "'\(identifier)' is defined twice")
            }
            guard let type = EventType(rawValue: item["type"]?.text ?? "info") else {
                throw ThingModelError(path: "\(path).type", reason: "must be info, alert or error")
            }
            let method =
                item["method"]?.text
                ?? (identifier == "post" ? "thing.event.property.post" : "thing.event.\(identifier).post")
            model.events.append(
                Event(
                    identifier: identifier, name: name, type: type, required: item["required"] == .bool(true),
                    method: method,
                    outputData: try fields(item["outputData"], "\(path).outputData", depth: 0, rules)))
        }
        seen = []
        for (i, item) in try list("services").enumerated() {
            let path = "$.services[\(i)]"
            let (identifier, name) = try names(item, path)
            if !seen.insert(identifier).inserted {
                throw ThingModelError(path: "\(path).identifier", reason: "'\(identifier)' is defined twice")
            }
            guard let callType = CallType(rawValue: item["callType"]?.text ?? "async") else {
                throw ThingModelError(path: "\(path).callType", reason: "must be sync or async")
            }
            let method =
                item["method"]?.text
                ?? (identifier == "set"
                    ? "thing.service.property.set"
                    : identifier == "get" ? "thing.service.property.get" : "thing.service.\(identifier)")
            // The built-in get lists identifiers as plain strings; it carries no typed input.
            let input: [Field] =
                identifier == "get" ? [] : try fields(item["inputData"], "\(path).inputData", depth: 0, rules)
            model.services.append(
                Service(
                    identifier: identifier, name: name, callType: callType, required: item["required"] == .bool(true),
                    method: method,
                    inputData: input, outputData: try fields(item["outputData"], "\(path).outputData", depth: 0, rules))
            )
        }
        return model
    }

    private static func names(_ item: JSONValue, _ path: String) throws(ThingModelError) -> (String, String) {
        guard case .object = item else { throw ThingModelError(path: path, reason: "must be an object") }
        guard let identifier = item["identifier"]?.text, isIdentifier(identifier) else {
            throw ThingModelError(
                path: "\(path).identifier", reason: "must be 1 to 50 letters, digits or _, starting with a letter or _")
        }
        let name = item["name"]?.text ?? identifier
        if name.isEmpty || name.count > 100 {
            throw ThingModelError(path: "\(path).name", reason: "must be 1 to 100 characters")
        }
        return (identifier, name)
    }

    private static func fields(_ value: JSONValue?, _ path: String, depth: Int, _ rules: NumberSpecRules)
        throws(ThingModelError) -> [Field]
    {
        guard let value else { return [] }
        guard case let .array(items) = value else { throw ThingModelError(path: path, reason: "must be an array") }
        var seen = Set<String>()
        var result: [Field] = []
        for (i, item) in items.enumerated() {
            let p = "\(path)[\(i)]"
            let (identifier, name) = try names(item, p)
            if !seen.insert(identifier).inserted {
                throw ThingModelError(path: "\(p).identifier", reason: "'\(identifier)' is defined twice")
            }
            guard let dataType = item["dataType"] else {
                throw ThingModelError(path: "\(p).dataType", reason: "is required")
            }
            result.append(
                Field(
                    identifier: identifier, name: name,
                    dataType: try parseType(dataType, "\(p).dataType", depth: depth, rules)))
        }
        return result
    }

    private static func parseType(_ value: JSONValue, _ path: String, depth: Int, _ rules: NumberSpecRules)
        throws(ThingModelError) -> DataType
    {
        guard depth < 3 else { throw ThingModelError(path: path, reason: "nests too deeply") }
        guard let type = value["type"]?.text else { throw ThingModelError(path: "\(path).type", reason: "is required") }
        let specs = value["specs"]
        let specsPath = "\(path).specs"
        func number(_ key: String) throws(ThingModelError) -> Double? {
            guard let raw = specs?[key] else { return nil }
            if case let .string(s) = raw, s.isEmpty { return nil }
            guard let n = raw.number, n.isFinite else {
                throw ThingModelError(path: "\(specsPath).\(key)", reason: "must be a number")
            }
            return n
        }
        /// An int's bound or step: exported as an integer literal, and compared with 32-bit values,
        /// so a bound past 32 bits (or with a fraction) would make a range no value can meet.
        func integer(_ key: String) throws(ThingModelError) -> Double? {
            guard let raw = specs?[key] else { return nil }
            switch raw {
            case let .string(s) where s.isEmpty: return nil
            case let .string(s): if let n = Int32(s) { return Double(n) }
            case let .int(n): if let n = Int32(exactly: n) { return Double(n) }
            default: break
            }
            throw ThingModelError(
                path: "\(specsPath).\(key)", reason: "must be a whole number from \(Int32.min) to \(Int32.max)")
        }
        func numberSpec(integral: Bool) throws(ThingModelError) -> NumberSpec {
            let read = integral && rules == .strict ? integer : number
            let spec = NumberSpec(
                min: try read("min"), max: try read("max"), step: try read("step"), unit: specs?["unit"]?.text,
                unitName: specs?["unitName"]?.text)
            if let lo = spec.min, let hi = spec.max, lo > hi {
                throw ThingModelError(path: "\(specsPath).max", reason: "is below min")
            }
            switch (spec.step, rules) {
            case let (step?, .strict) where step <= 0:
                throw ThingModelError(path: "\(specsPath).step", reason: "must be above 0")
            case let (step?, .asStored) where step < 0:
                throw ThingModelError(path: "\(specsPath).step", reason: "must not be negative")
            default: return spec
            }
        }
        func names(_ keys: Set<String>?) throws(ThingModelError) -> [String: String] {
            guard case let .object(o)? = specs else {
                throw ThingModelError(path: specsPath, reason: "must be an object of value names")
            }
            var result: [String: String] = [:]
            for (k, v) in o {
                guard let name = v.text else {
                    throw ThingModelError(path: "\(specsPath).\(k)", reason: "must be a name")
                }
                if let keys, !keys.contains(k) {
                    throw ThingModelError(path: "\(specsPath).\(k)", reason: "bool values are 0 and 1")
                }
                result[k] = name
            }
            return result
        }
        switch type {
        case "int": return .int(try numberSpec(integral: true))
        case "float": return .float(try numberSpec(integral: false))
        case "double": return .double(try numberSpec(integral: false))
        case "text":
            let length = try number("length") ?? 10_240
            guard length >= 1, length <= 10_240, length.rounded() == length else {
                throw ThingModelError(path: "\(specsPath).length", reason: "must be a whole number from 1 to 10240")
            }
            return .text(maxLength: Int(length))
        case "date": return .date
        case "bool": return .bool(names: try names(["0", "1"]))
        case "enum":
            var result: [Int: String] = [:]
            for (k, v) in try names(nil) {
                guard let key = Int(k) else {
                    throw ThingModelError(path: "\(specsPath).\(k)", reason: "enum values must be integers")
                }
                result[key] = v
            }
            if result.isEmpty { throw ThingModelError(path: specsPath, reason: "must name at least one value") }
            return .enumeration(names: result)
        case "struct":
            let members = try fields(specs, specsPath, depth: depth + 1, rules)
            if members.isEmpty { throw ThingModelError(path: specsPath, reason: "must list at least one member") }
            return .structure(members)
        case "array":
            let size = try number("size") ?? 128
            guard size >= 1, size <= 512, size.rounded() == size else {
                throw ThingModelError(path: "\(specsPath).size", reason: "must be a whole number from 1 to 512")
            }
            guard let item = specs?["item"] else {
                throw ThingModelError(path: "\(specsPath).item", reason: "is required")
            }
            let itemType = try parseType(item, "\(specsPath).item", depth: depth + 1, rules)
            switch itemType {
            case .int, .float, .double, .text, .structure: break
            default:
                throw ThingModelError(
                    path: "\(specsPath).item.type", reason: "arrays hold int, float, double, text or struct")
            }
            return .array(size: Int(size), item: itemType)
        default:
            throw ThingModelError(
                path: "\(path).type", reason: "must be int, float, double, text, date, bool, enum, struct or array")
        }
    }

    // MARK: export

    /// The model as TSL JSON, in the shape Alibaba IoT exports (numbers in specs as strings).
    public var tsl: JSONValue {
        func number(_ d: Double?) -> JSONValue {
            d.map { .string($0.rounded() == $0 && abs($0) < 1e15 ? String(Int64($0)) : String($0)) } ?? .string("")
        }
        func type(_ t: DataType) -> JSONValue {
            let specs: JSONValue
            switch t {
            case let .int(s), let .float(s), let .double(s):
                var o: [String: JSONValue] = ["min": number(s.min), "max": number(s.max), "step": number(s.step)]
                if let unit = s.unit { o["unit"] = .string(unit) }
                if let unitName = s.unitName { o["unitName"] = .string(unitName) }
                specs = .object(o)
            case let .text(length): specs = .object(["length": .string(String(length))])
            case .date: specs = .object([:])
            case let .bool(names): specs = .object(names.mapValues { .string($0) })
            case let .enumeration(names):
                specs = .object(Dictionary(uniqueKeysWithValues: names.map { (String($0.key), .string($0.value)) }))
            case let .structure(members): specs = .array(members.map(field))
            case let .array(size, item): specs = .object(["size": .string(String(size)), "item": type(item)])
            }
            return .object(["type": .string(t.typeName), "specs": specs])
        }
        func field(_ f: Field) -> JSONValue {
            .object(["identifier": .string(f.identifier), "name": .string(f.name), "dataType": type(f.dataType)])
        }
        var root: [String: JSONValue] = [
            "schema": .string("https://iotx-tsl.oss-ap-southeast-1.aliyuncs.com/schema.json"),
            "properties": .array(
                properties.map { p in
                    .object([
                        "identifier": .string(p.identifier), "name": .string(p.name),
                        "accessMode": .string(p.accessMode.rawValue),
                        "required": .bool(p.required), "dataType": type(p.dataType),
                    ])
                }),
            "events": .array(
                events.map { e in
                    .object([
                        "identifier": .string(e.identifier), "name": .string(e.name), "type": .string(e.type.rawValue),
                        "required": .bool(e.required),
                        "method": .string(e.method), "outputData": .array(e.outputData.map(field)),
                    ])
                }),
            "services": .array(
                services.map { s in
                    .object([
                        "identifier": .string(s.identifier), "name": .string(s.name),
                        "callType": .string(s.callType.rawValue), "required": .bool(s.required),
                        "method": .string(s.method), "inputData": .array(s.inputData.map(field)),
                        "outputData": .array(s.outputData.map(field)),
                    ])
                }),
        ]
        if let productKey { root["profile"] = .object(["productKey": .string(productKey)]) }
        return .object(root)
    }
}
