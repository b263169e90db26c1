import Foundation
import Hummingbird
import LinliCore
@_exported import LinliPages

// What pages take from a request: who is signed in, their language, the page asked for. The page
// machinery itself (`Pages`, `Catalogue`, `Frame`) is LinliPages', which knows no requests.

extension Frame {
    package init(title: String, context: AppContext, community: Community? = nil) {
        self.init(title: title, language: context.language, target: context.target, community: community)
        if let caller = context.caller {
            user = caller.displayName
            csrf = context.session?.csrfToken
            resident = caller.isResidentOnly
            canAudit = caller.can(.viewAudit)
            canImport = community.map { caller.scope(for: .importData).coversCommunity($0.id) } ?? false
            canDevices = caller.can(.viewDevices)
            canAlarms = caller.can(.viewAlarms)
            canNotices = caller.can(.publishNotices)
            canWorkOrders = caller.can(.viewWorkOrders)
            canPlaces = caller.can(.viewCommunity)
            canPeople = caller.can(.viewPeople)
            canVehicles = caller.can(.viewVehicles)
            canOrganisations = caller.can(.viewOrganisations)
        }
    }
}

extension Pages {
    /// The kernel's own templates: the layout, the pager, the error page and the API reference.
    public static var kernelTemplates: URL { get throws { try Bundle.module.folder("Templates") } }

    /// A problem's title for a person: in English as the problem says it; in another language the
    /// catalogue's title of its type (`problem.{type}`), when there is one.
    package func title(of problem: Problem, _ language: Language) -> String {
        guard language != .en, catalogue.contains("problem." + problem.type) else { return problem.title }
        return catalogue.text("problem." + problem.type, language)
    }

    /// What a problem says to a person, in their language: the catalogue's words for its type
    /// (`problem.detail.{type}`, a capability by its label); the English detail, marked as
    /// English, for a type the catalogue does not know. The API keeps its English details.
    package func detail(of problem: Problem, _ language: Language) -> (text: String, language: Language)? {
        guard let detail = problem.detail else { return nil }
        let key = "problem.detail." + problem.type
        guard catalogue.contains(key) else { return (detail, .en) }
        if problem.type == "forbidden" {
            let named = Capability.allCases.first { detail.contains(" \($0.rawValue).") }
            guard let named else { return (catalogue.text("problem.detail.forbiddenAny", language), language) }
            return (
                catalogue.text(key, language, ["capability": catalogue.label("capability", named.rawValue, language)]),
                language
            )
        }
        return (catalogue.text(key, language), language)
    }

    package func errorPage(_ problem: Problem, context: AppContext) throws -> Response {
        let title = title(of: problem, context.language)
        let detail = detail(of: problem, context.language)
        // What exactly was refused (a field, a limit, a malformed part) is in the API's English
        // words only: kept under "technical details", marked as English, for whoever reports it.
        let specific = ["bad-request", "invalid", "invalid-query", "conflict", "unsupported-media-type"]
        let technical = specific.contains(problem.type) && detail?.text != problem.detail ? problem.detail : nil
        var response = try render(
            "error",
            [
                "frame": Frame(title: title, context: context), "title": title, "detail": detail?.text as Any,
                "detailLang": (detail?.language ?? context.language).rawValue, "technical": technical as Any,
            ] as [String: Any], status: problem.status)
        response.headers.append(contentsOf: problem.responseHeaders)
        return response
    }
}
