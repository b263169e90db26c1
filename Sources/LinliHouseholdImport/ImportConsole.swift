import Foundation
import HTTPTypes
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

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
    func register(_ router: Router<AppContext>) {
        router.get("/console/c/:cid/import", use: importPage)
        router.post("/console/c/:cid/import", use: importUpload)
        router.get("/console/c/:cid/import/template", use: importTemplate)
    }

    // MARK: import

    @Sendable func importPage(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .importData)
        if !scope.coversCommunity(community.id) { throw Problem.forbidden(.importData) }
        return try pages.render(
            "import",
            [
                "frame": Frame(title: text("import.title", context), context: context, community: community),
                "modeAll": true, "columns": importColumns(context),
            ] as [String: Any])
    }

    /// The sheet to fill in: the header row and one example row in the page's language, UTF-8
    /// with a byte order mark so that Excel opens it right.
    @Sendable func importTemplate(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .importData)
        if !scope.coversCommunity(community.id) { throw Problem.forbidden(.importData) }
        let example = HouseholdSheet.example
        let header = HouseholdSheet.Column.allCases.map { context.language == .en ? $0.rawValue : $0.chinese }
        let row = HouseholdSheet.Column.allCases.map { c -> String in
            let value = example[c] ?? ""
            // Codes in English, the Chinese labels (which the sheet takes as well) in Chinese.
            guard context.language != .en else { return value }
            switch c {
            case .occupancy: return label("occupancy", value, context)
            case .role: return label("residencyRole", value, context)
            case .careTags: return value.isEmpty ? "" : label("careTag", value, context)
            default: return value
            }
        }
        return API.spreadsheet(CSV.write([header, row]), filename: text("import.templateFile", context))
    }

    struct ReportView {
        var imported: Bool
        var rows: Int
        var validRows: Int
        var householdsCreated: Int
        var peopleCreated: Int
        var residenciesCreated: Int
        var problems: [ProblemRow]
        var problemCount: Int
        var hasProblems: Bool
    }

    @Sendable func importUpload(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .importData)
        if !scope.coversCommunity(community.id) { throw Problem.forbidden(.importData) }
        // A chosen file comes as multipart (its bytes as saved: UTF-8 or GBK); pasted text as a form.
        var fields: [String: String]
        var csv: String
        var fileFault: String? = nil
        if request.headers[.contentType]?.lowercased().hasPrefix("multipart/") == true {
            let form = try await request.multipart(context: context, folder: uploads)
            fields = form.fields
            csv = fields["csv"] ?? ""
            if let file = form.file("file") {
                do { csv = try CSV.text(spreadsheet: try file.bytes()).text } catch let fault as CSV.ParseError {
                    fileFault = text("import.problem.encoding", context, ["line": String(fault.line)])
                }
            }
        } else {
            fields = try await request.formFields(context: context)
            csv = fields["csv"] ?? ""
        }
        let mode = fields["mode"] == "valid" ? "valid" : "all"
        let createPlaces = fields["createPlaces"] == "on"
        func again(_ report: ReportView?, status: HTTPResponse.Status) throws -> Response {
            try pages.render(
                "import",
                [
                    "frame": Frame(title: text("import.title", context), context: context, community: community),
                    "report": report as Any, "csv": csv, "modeAll": mode == "all", "createPlaces": createPlaces,
                    "columns": importColumns(context), "fileError": fileFault ?? "", "hasFileError": fileFault != nil,
                    "hasCSVError": fileFault == nil && csv.isEmpty,
                ] as [String: Any], status: status)
        }
        if fileFault != nil || csv.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return try again(nil, status: .unprocessableContent)
        }
        let report = try await store.importHouseholds(
            communityId: community.id, csv: csv, onlyValid: mode == "valid", dryRun: false,
            createPlaces: createPlaces, actor: context.principal)
        let view = ReportView(
            imported: report.imported, rows: report.rows, validRows: report.validRows,
            householdsCreated: report.householdsCreated,
            peopleCreated: report.peopleCreated, residenciesCreated: report.residenciesCreated,
            problems: report.problems.map { problemRow($0, context) },
            problemCount: report.problems.count, hasProblems: !report.problems.isEmpty)
        return try again(view, status: report.imported || report.problems.isEmpty ? .ok : .unprocessableContent)
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
}
