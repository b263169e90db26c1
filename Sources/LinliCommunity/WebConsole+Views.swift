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

package struct CodeLabel {
    package var code: String
    package var label: String
    package init(code: String, label: String) {
        self.code = code
        self.label = label
    }
}

struct PersonRow {
    var p: PersonView
    var residencies: [ResidencyRow]
    var careTags: [CodeLabel]
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

extension ModuleRoutes {
    /// Care tags by their labels in the page's language (the import page lists them too).
    package func careTagLabels(_ tags: [CareTag], _ context: AppContext) -> [CodeLabel] {
        tags.map { CodeLabel(code: $0.rawValue, label: label("careTag", $0.rawValue, context)) }
    }
}
