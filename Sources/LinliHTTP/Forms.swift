import Foundation
import HTTPTypes
import Hummingbird
import LinliCore

/// One field of a console form as the kernel's `form` template draws it: its label, what the person
/// typed (or what is stored), and what is wrong with it, beside it (`aria-describedby`).
package struct FormField {
    package var name: String
    package var label: String
    package var value: String
    package var type: String
    package var isSelect: Bool
    package var isChoice: Bool
    package var options: [SelectOption]
    package var error: String?
    package var hint: String?
    package var required: Bool
    package var max: String?
    package var inputMode: String?
    package var describedBy: String?
}

/// A choice of a select, a radio or a checkbox group: the code sent, the label shown.
package struct FormChoice {
    package var code: String
    package var label: String
    package init(_ code: String, _ label: String) {
        self.code = code
        self.label = label
    }
}

/// What a form holds: on a GET what is stored, on a POST what was sent (kept when it is refused);
/// and, after the checks, why each field at fault was refused, in the page's language.
package struct FormInput {
    package var values: [String: String]
    package var posted: Bool
    package var errors: [String: String] = [:]

    /// The field's value trimmed, nil when empty.
    package subscript(_ key: String) -> String? {
        guard let v = values[key]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
        return v
    }

    /// The codes of a checkbox group.
    package func list(_ key: String) -> [String] { (values[key] ?? "").split(separator: ",").map(String.init) }

    package func int(_ key: String, _ v: inout Validator, in range: ClosedRange<Int>, required: Bool) -> Int? {
        guard let raw = self[key] else {
            if required { v.add(key, "is required") }
            return nil
        }
        guard let n = Int(raw) else {
            v.add(key, "form.reason.wholeNumber")
            return nil
        }
        v.number(n, key, in: range)
        return range.contains(n) ? n : nil
    }

    /// A date written YYYY-MM-DD; empty is not given.
    package func day(_ key: String, _ v: inout Validator) -> String? {
        v.day(self[key], key)
        return self[key].flatMap { Day.isValid($0) ? $0 : nil }
    }

    package func field(
        _ name: String, _ label: String, type: String = "text", options: [FormChoice]? = nil, required: Bool = false,
        max: Int? = nil, hint: String? = nil, mode: String? = nil
    ) -> FormField {
        let value = values[name] ?? ""
        let chosen = Set(list(name))
        let error = errors[name]
        return FormField(
            name: name, label: label, value: value, type: type, isSelect: type == "select",
            isChoice: type == "checkbox" || type == "radio",
            options: (options ?? []).map {
                SelectOption(
                    value: $0.code, label: $0.label,
                    selected: type == "checkbox" ? chosen.contains($0.code) : value == $0.code)
            }, error: error, hint: hint, required: required, max: max.map(String.init), inputMode: mode,
            describedBy: error != nil ? "error-\(name)" : hint != nil ? "hint-\(name)" : nil)
    }
}

/// What the `form` template shows around the fields.
package struct FormPage {
    package var heading: String
    package var action: String
    package var submit: String
    package var back: String
    package var lead: String?
    package var danger = false
    /// A search above the form (a person already registered): where it goes, what was asked.
    package var searchAction: String?
    package var searchLabel: String?
    package var q: String?

    package init(heading: String, action: String, submit: String, back: String, lead: String? = nil) {
        self.heading = heading
        self.action = action
        self.submit = submit
        self.back = back
        self.lead = lead
    }
}

extension ModuleRoutes {
    /// The form's input: on a POST the fields sent, else `stored`.
    package func formInput(_ request: Request, _ context: AppContext, stored: [String: String] = [:]) async throws
        -> FormInput
    {
        guard request.method == .post else { return FormInput(values: stored, posted: false) }
        var request = request
        var values = try await request.formFields(context: context)
        values["_csrf"] = nil
        return FormInput(values: values, posted: true)
    }

    /// Keeps the first issue of each field, as the catalogue says it: a reason that is a key of
    /// the catalogue as it is, the `Validator`'s English reasons by theirs.
    package func refuse(_ input: inout FormInput, _ issues: [FieldIssue], _ context: AppContext) {
        for issue in issues where input.errors[issue.field] == nil {
            input.errors[issue.field] = formReason(issue.reason, context)
        }
    }

    package func formReason(_ reason: String, _ context: AppContext) -> String {
        if pages.catalogue.contains(reason) { return text(reason, context) }
        let numbers = reason.split { !$0.isNumber && $0 != "-" }.compactMap { Int($0) }
        if reason.hasPrefix("must be at most"), let max = numbers.first {
            return text("form.reason.tooLong", context, ["max": String(max)])
        }
        if reason.hasPrefix("must be between"), numbers.count == 2 {
            return text("form.reason.range", context, ["min": String(numbers[0]), "max": String(numbers[1])])
        }
        let plain = [
            "is required": "required", "must not be empty": "required",
            "must not contain control characters": "control",
            "must be a date written YYYY-MM-DD": "day", "must be a phone number of 5 to 20 digits": "phone",
        ]
        return text("form.reason." + (plain[reason] ?? "invalid"), context)
    }

    /// The page of a form: 200 as asked, 422 with the reasons beside the fields at fault.
    package func renderForm(
        _ page: FormPage, _ fields: [FormField], _ input: FormInput, community: Community?, context: AppContext
    ) throws -> Response {
        try pages.render(
            "form",
            [
                "frame": Frame(title: page.heading, context: context, community: community), "page": page,
                "fields": fields, "hasErrors": !input.errors.isEmpty,
            ] as [String: Any], status: input.errors.isEmpty ? .ok : .unprocessableContent)
    }
}
