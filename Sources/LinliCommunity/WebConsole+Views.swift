import Foundation
import LinliCore
import LinliHTTP

/// What the community's pages show of a row: its codes as labels in the page's language, its
/// numbers with their units. The rows themselves stay as the store gives them (the API serves them).
struct HouseholdRow {
    var h: HouseholdListing
    /// Square metres without a needless ".0" (89.5, 76); nil when not recorded.
    var area: String?
    var code: String
    var occupancy: String
}

struct ResidencyRow {
    var r: ResidencyListing
    var role: String
    var roleCode: String
    var hasLease: Bool
    /// "（租期至 2027-06-30）" for a tenant whose lease end is known.
    var leaseTo: String?
}

struct CodeLabel {
    var code: String
    var label: String
}

struct PersonRow {
    var p: PersonView
    var residencies: [ResidencyRow]
    var careTags: [CodeLabel]
}

struct ProblemRow {
    var line: Int
    /// The column's code (`identity_number`), or the header as written for an unknown column.
    var code: String
    var field: String
    var reason: String
}

struct ImportColumn {
    var code: String
    var chinese: String
    var label: String
    /// Whether the label says more than the Chinese header (it does not on the Chinese page).
    var distinct: Bool
    var values: [CodeLabel]
    var note: String
}

extension WebConsole {
    /// An area in square metres as a person writes it: 89.5, 76 (no "76.0").
    static func area(_ value: Double?) -> String? {
        guard let value else { return nil }
        if value == value.rounded() { return String(Int(value)) }
        return String(format: "%.2f", value).replacingOccurrences(of: #"0+$"#, with: "", options: .regularExpression)
    }

    func residencyRow(_ r: ResidencyListing, _ context: AppContext) -> ResidencyRow {
        ResidencyRow(
            r: r, role: label("residencyRole", r.role.rawValue, context), roleCode: r.role.rawValue,
            hasLease: r.leaseStart != nil || r.leaseEnd != nil,
            leaseTo: r.leaseEnd.map { text("person.leaseTo", context, ["date": $0]) })
    }

    func careTagLabels(_ tags: [CareTag], _ context: AppContext) -> [CodeLabel] {
        tags.map { CodeLabel(code: $0.rawValue, label: label("careTag", $0.rawValue, context)) }
    }

    /// The import's columns with the values each takes, in the page's language; the codes are what
    /// the CSV takes (a Chinese label is taken too).
    func importColumns(_ context: AppContext) -> [ImportColumn] {
        HouseholdSheet.Column.allCases.map { c in
            var values: [CodeLabel] = []
            var note = ""
            switch c {
            case .occupancy:
                values = Occupancy.allCases.map {
                    CodeLabel(code: $0.rawValue, label: label("occupancy", $0.rawValue, context))
                }
            case .role:
                values = ResidencyRole.allCases.map {
                    CodeLabel(code: $0.rawValue, label: label("residencyRole", $0.rawValue, context))
                }
            case .careTags:
                values = careTagLabels(CareTag.allCases, context)
                note = text("import.valuesCareTags", context)
            case .leaseStart, .leaseEnd, .movedIn: note = text("import.valuesDate", context)
            case .area: note = text("import.valuesArea", context)
            case .floor: note = text("import.valuesFloor", context)
            case .identityNumber: note = text("import.valuesIdentity", context)
            case .phone: note = text("import.valuesPhone", context)
            case .building, .unit, .room, .name: note = text("import.valuesText", context)
            }
            let shown = label("import.column", c.rawValue, context)
            return ImportColumn(
                code: c.rawValue, chinese: c.chinese, label: shown, distinct: shown != c.chinese, values: values,
                note: note)
        }
    }

    /// A problem of the sheet as the page shows it: the column by its label, the reason from the
    /// catalogue (the parser's reasons are English, for the API), any number or value kept.
    func problemRow(_ p: HouseholdSheet.Problem, _ context: AppContext) -> ProblemRow {
        let known = HouseholdSheet.Column(rawValue: p.field) != nil || p.field == "file" || p.field == "row"
        return ProblemRow(
            line: p.line, code: p.field, field: known ? label("import.column", p.field, context) : p.field,
            reason: importReason(p.reason, context))
    }

    /// A value the sheet accepts: in Chinese its label (which the sheet takes as it is), in English
    /// the code with its label (the English label is not what the sheet takes).
    func accepted(_ code: String, _ label: String, _ context: AppContext) -> String {
        context.language == .en ? "\(code) (\(label))" : label
    }

    func importReason(_ reason: String, _ context: AppContext) -> String {
        func match(_ pattern: String) -> [String]? {
            guard let regex = try? NSRegularExpression(pattern: "^" + pattern + "$"),
                let m = regex.firstMatch(in: reason, range: NSRange(reason.startIndex..., in: reason))
            else { return nil }
            return (1..<m.numberOfRanges).map { i in
                Range(m.range(at: i), in: reason).map { String(reason[$0]) } ?? ""
            }
        }
        let plain: [String: String] = [
            "a quoted field is never closed": "import.problem.unclosedQuote",
            "is empty; expected a header row": "import.problem.empty",
            "appears twice in the header": "import.problem.twice",
            "column is missing from the header": "import.problem.missingColumn",
            "must be a whole number between -10 and 300": "import.problem.floor",
            "must be a positive number of square metres": "import.problem.area",
            "is not a valid 18-character identity card number": "import.problem.identity",
            "is before the lease start": "import.problem.leaseBefore",
            "applies to tenants only": "import.problem.leaseTenants",
            "is required when a phone or identity number is given": "import.problem.nameRequired",
            "is required": "import.problem.required",
            "must not be empty": "import.problem.notEmpty",
            "must not contain control characters": "import.problem.control",
            "must be a date written YYYY-MM-DD": "import.problem.day",
            "must be a phone number of 5 to 20 digits": "import.problem.phone",
            HouseholdSheet.unknownBuilding: "import.problem.unknownBuilding",
            HouseholdSheet.unknownUnit: "import.problem.unknownUnit",
        ]
        if let key = plain[reason] { return text(key, context) }
        if reason.hasPrefix("is not a known column") { return text("import.problem.unknownColumn", context) }
        if reason.hasPrefix("must be owner_occupied") {
            let values = Occupancy.allCases.map {
                accepted($0.rawValue, label("occupancy", $0.rawValue, context), context)
            }
            return text(
                "import.problem.occupancy", context,
                ["values": values.joined(separator: text("import.valueSeparator", context))])
        }
        if reason.hasPrefix("must be owner, tenant") {
            let values = ResidencyRole.allCases.map {
                accepted($0.rawValue, label("residencyRole", $0.rawValue, context), context)
            }
            return text(
                "import.problem.role", context,
                ["values": values.joined(separator: text("import.valueSeparator", context))])
        }
        if let m = match(#"has more than (\d+) rows; split it"#) {
            return text("import.problem.tooManyRows", context, ["max": m[0]])
        }
        if let m = match(#"has (\d+) fields, the header has (\d+)"#) {
            return text("import.problem.fieldCount", context, ["n": m[0], "m": m[1]])
        }
        if let m = match(#"repeats the person on line (\d+)"#) {
            return text("import.problem.repeats", context, ["line": m[0]])
        }
        if let m = match(#"has unknown tag '(.*)' \(known: .*\)"#) {
            let values = CareTag.allCases.map { accepted($0.rawValue, label("careTag", $0.rawValue, context), context) }
            return text(
                "import.problem.careTag", context,
                ["tag": m[0], "values": values.joined(separator: text("import.valueSeparator", context))])
        }
        if let m = match(#"must be at most (\d+) characters"#) {
            return text("import.problem.tooLong", context, ["max": m[0]])
        }
        return reason
    }

    /// A form issue of the new-account form, by the field's label and the catalogue's reason.
    func accountIssue(_ issue: FieldIssue, _ context: AppContext) -> String {
        let reasons: [String: String] = [
            "is required": "access.reason.required",
            "must not be empty": "access.reason.required",
            "may hold only letters, digits and . _ - @": "access.reason.usernameChars",
            "must be a community role": "access.reason.communityRole",
            "is required for a grid worker": "access.reason.gridRequired",
            "is required for a department agent": "access.reason.organisationRequired",
            "is required for a resident": "access.reason.householdRequired",
            "is not a grid of this community": "access.reason.notGrid",
            "is not an organisation of this community": "access.reason.notOrganisation",
            "is not a household of this community": "access.reason.notHousehold",
        ]
        var reason: String
        if let key = reasons[issue.reason] {
            reason = text(key, context)
        } else if issue.reason.hasPrefix("must be at most"), issue.field == "password" {
            reason = text("access.reason.passwordLong", context)
        } else if issue.reason.hasPrefix("must be at least") {
            reason = text("access.reason.passwordShort", context)
        } else if let max = issue.reason.split(separator: " ").compactMap({ Int($0) }).first,
            issue.reason.hasPrefix("must be at most")
        {
            reason = text("access.reason.tooLong", context, ["max": String(max)])
        } else if issue.reason.contains("taken") || issue.reason.contains("exists") || issue.reason.contains("already")
        {
            reason = text("access.reason.taken", context)
        } else {
            reason = text("access.reason.invalid", context)
        }
        let fields = ["username", "displayName", "password", "role", "gridId", "organisationId", "householdId"]
        let field = fields.contains(issue.field) ? issue.field : "username"
        return text("access.error." + field, context, ["reason": reason])
    }
}
