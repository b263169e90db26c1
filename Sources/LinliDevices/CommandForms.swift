import Foundation
import LinliCore
import LinliHTTP
import LinliThings

/// A command for a device as a form made from its thing model: for setting properties, one field
/// per writable property; for a service, one per input. Each field is of its data type's kind (a
/// number with its range, step and unit; a choice for a switch or an enumeration, by their names;
/// text), so nobody writes JSON by hand. The JSON of the parameters stays as "advanced", for
/// structures and arrays.
struct CommandForm {
    struct Field {
        /// `in.{service}.{identifier}`: the fields of every service are in the one form.
        var name: String
        var identifier: String
        var label: String
        var number: Bool
        var choice: Bool
        var text: Bool
        var json: Bool
        var min: String
        var max: String
        var step: String
        var unit: String
        var options: [SelectOption]
        var value: String
        var hint: String
        var hasError: Bool
        var error: String
    }

    var service: String
    var name: String
    var fields: [Field]
    var hasFields: Bool
    var chosen: Bool

    /// The inputs of `service` (or the writable properties for `property.set`) in the model.
    static func inputs(_ model: ThingModel?, service: String) -> [(
        identifier: String, name: String, type: ThingModel.DataType
    )] {
        guard let model else { return [] }
        if service == WebConsole.setProperties {
            return model.properties.filter { $0.accessMode != .r }.map { ($0.identifier, $0.name, $0.dataType) }
        }
        return model.service(service)?.inputData.map { ($0.identifier, $0.name, $0.dataType) } ?? []
    }

    /// What the fields of `service` say as the parameters to send; a field left empty is not sent.
    /// A value that is not of its type is named by the field's identifier.
    static func parameters(_ model: ThingModel?, service: String, form: [String: String]) -> (
        params: [String: JSONValue], faults: [String: String]
    ) {
        var params: [String: JSONValue] = [:]
        var faults: [String: String] = [:]
        for input in inputs(model, service: service) {
            let raw = (form["in.\(service).\(input.identifier)"] ?? "").trimmingCharacters(in: .whitespaces)
            if raw.isEmpty { continue }
            switch input.type {
            case .int, .bool, .enumeration:
                if let n = Int64(raw) { params[input.identifier] = .int(n) } else { faults[input.identifier] = "int" }
            case .float, .double:
                if let d = Double(raw), d.isFinite {
                    params[input.identifier] = .double(d)
                } else {
                    faults[input.identifier] = "number"
                }
            case .text, .date: params[input.identifier] = .string(raw)
            case .structure, .array:
                if let v = JSONValue.parse(Data(raw.utf8)) {
                    params[input.identifier] = v
                } else {
                    faults[input.identifier] = "json"
                }
            }
        }
        return (params, faults)
    }
}

extension WebConsole {
    static let setProperties = "property.set"
}

extension WebConsole {
    /// The form of every command the device takes, the one chosen open, with what was typed and
    /// the faults beside their fields.
    func commandForms(
        _ model: ThingModel?, chosen: String?, form: [String: String], faults: [String: String], context: AppContext
    ) -> [CommandForm] {
        var services = [(WebConsole.setProperties, text("devicesforms.setProperties", context))]
        services += (model?.services ?? []).filter { !["set", "get"].contains($0.identifier) }.map {
            ($0.identifier, $0.name)
        }
        let chosen = chosen ?? services.first?.0
        return services.map { service, name in
            let fields = CommandForm.inputs(model, service: service).map { input -> CommandForm.Field in
                let fieldName = "in.\(service).\(input.identifier)"
                let value = form[fieldName] ?? ""
                var field = CommandForm.Field(
                    name: fieldName, identifier: input.identifier,
                    label: input.name.isEmpty ? input.identifier : input.name,
                    number: false, choice: false, text: false, json: false, min: "", max: "", step: "", unit: "",
                    options: [], value: value, hint: "", hasError: false, error: "")
                switch input.type {
                case let .int(spec), let .float(spec), let .double(spec):
                    field.number = true
                    field.min = spec.min.map(Self.number) ?? ""
                    field.max = spec.max.map(Self.number) ?? ""
                    if case .int = input.type {
                        field.step = spec.step.map(Self.number) ?? "1"
                    } else {
                        field.step = spec.step.map(Self.number) ?? "any"
                    }
                    // The model's unit name is Chinese ("秒"): beside its symbol on a Chinese page, the
                    // symbol alone on another.
                    if context.language == .en {
                        field.unit = spec.unit ?? spec.unitName ?? ""
                    } else {
                        field.unit =
                            spec.unitName.map { name in spec.unit.map { "\(name)（\($0)）" } ?? name } ?? spec.unit ?? ""
                    }
                    if !field.min.isEmpty, !field.max.isEmpty {
                        field.hint = text("devicesforms.command.range", context, ["min": field.min, "max": field.max])
                    }
                case let .bool(names):
                    field.choice = true
                    field.options = ["0", "1"].map { code in
                        SelectOption(
                            value: code, label: names[code].map { "\($0)（\(code)）" } ?? code, selected: value == code)
                    }
                case let .enumeration(names):
                    field.choice = true
                    field.options = names.keys.sorted().map { key in
                        SelectOption(
                            value: String(key), label: "\(names[key] ?? "")（\(key)）", selected: value == String(key))
                    }
                case let .text(maxLength):
                    field.text = true
                    field.hint = text("devicesforms.command.textMax", context, ["max": String(maxLength)])
                case .date:
                    field.text = true
                    field.hint = text("devicesforms.command.date", context)
                case .structure, .array:
                    field.json = true
                    field.hint = text("devicesforms.command.json", context)
                }
                if let fault = faults[input.identifier] {
                    field.hasError = true
                    field.error = formReason(
                        [
                            "int": "devicesforms.command.notInt", "number": "devicesforms.command.notNumber",
                            "json": "devicesforms.command.notJSON",
                        ][fault] ?? fault, context)
                }
                return field
            }
            return CommandForm(
                service: service, name: name, fields: fields, hasFields: !fields.isEmpty, chosen: service == chosen)
        }
    }

    /// 20, 0.5, -10: as a person writes the number.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
