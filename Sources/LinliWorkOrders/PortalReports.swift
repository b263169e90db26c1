import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// The resident portal's 报事报修: report a problem (with a photo), follow one's reports, rate the
/// result or reopen it.
extension WebConsole {
    func registerPortalReports(_ router: Router<AppContext>) {
        router.get("/app/reports", use: myReports)
        router.get("/app/reports/new", use: newReport)
        router.post("/app/reports", use: fileReport)
        router.get("/app/reports/:id", use: report)
        router.post("/app/reports/:id/rate", use: rateReport)
        router.post("/app/reports/:id/reopen", use: reopenReport)
    }

    struct ReportRow {
        var id: ID
        var number: String
        var title: String
        var category: String
        var statusCode: String
        var status: String
        var created: String
        var rated: Int
        var hasRating: Bool
    }

    @Sendable func myReports(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        let found = try await store.workOrders(
            communityId: nil, filter: WorkOrderFilter(), page: PageRequest(limit: 100), scope: Scope(),
            reporter: caller.accountId)
        let rows = found.items.map {
            ReportRow(
                id: $0.id, number: $0.number, title: $0.title,
                category: label("workorder.category", $0.category.rawValue, context),
                statusCode: $0.status.rawValue, status: label("workorder.status", $0.status.rawValue, context),
                created: Self.time($0.createdAt), rated: $0.rating ?? 0, hasRating: $0.rating != nil)
        }
        return try pages.render(
            "reports",
            [
                "frame": Frame(title: text("report.mine", context), context: context), "reports": rows,
                "hasReports": !rows.isEmpty,
            ]
                as [String: Any])
    }

    /// The community a resident reports in: that of their home.
    func reportingHome(_ context: AppContext) throws -> (communityId: ID, householdId: ID)? {
        let caller = try context.requireCaller()
        return caller.bindings.first { $0.role.capabilities.contains(.reportProblems) && $0.communityId != nil }
            .map { ($0.communityId!, $0.householdId ?? "") }
    }

    @Sendable func newReport(_ request: Request, context: AppContext) async throws -> Response {
        guard try reportingHome(context) != nil else { throw Problem.forbidden(.reportProblems) }
        return try reportForm(context, error: nil, status: .ok)
    }

    func reportForm(
        _ context: AppContext, error: String?, status: HTTPResponse.Status, title: String = "",
        description: String = "",
        category: String = ""
    ) throws -> Response {
        try pages.render(
            "report-new",
            [
                "frame": Frame(title: text("report.new", context), context: context),
                "categories": WorkOrderCategory.allCases.map {
                    SelectOption(
                        value: $0.rawValue, label: label("workorder.category", $0.rawValue, context),
                        selected: $0.rawValue == category)
                },
                "error": error ?? "", "hasError": error != nil, "title": title, "description": description,
            ] as [String: Any], status: status)
    }

    /// The form comes as multipart (it may carry a photo); the report is filed first, then the
    /// photo checked and kept. A refused photo leaves the report filed and says why.
    @Sendable func fileReport(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        guard let home = try reportingHome(context) else { throw Problem.forbidden(.reportProblems) }
        let caller = try context.requireCaller()
        // The photo, if any, is on disk by now (streamed there), not in memory.
        let form = try await request.multipart(context: context, folder: uploads)
        func field(_ name: String) -> String { form.field(name) }
        let title = field("title")
        let description = field("description")
        guard let category = WorkOrderCategory(rawValue: field("category")) else {
            return try reportForm(
                context, error: text("report.error.category", context), status: .unprocessableContent, title: title,
                description: description)
        }
        guard (1...100).contains(title.count), description.count <= 2_000 else {
            return try reportForm(
                context, error: text("report.error.title", context), status: .unprocessableContent, title: title,
                description: description, category: category.rawValue)
        }
        let household =
            home.householdId.isEmpty ? nil : try? await store.household(home.householdId, scope: .everything)
        let order = try await store.submitWorkOrder(
            WorkOrderReport(
                communityId: home.communityId, category: category, title: title, description: description,
                source: caller.isResidentOnly ? .resident : .staff,
                reporterAccountId: caller.accountId, reporterName: caller.displayName, householdId: household?.id,
                buildingId: household?.buildingId,
                location: household.map { "\($0.buildingName) \($0.unitName) \($0.room)" } ?? ""),
            actor: context.principal)
        if let photo = form.file("photo") {
            do {
                _ = try await store.addPhoto(to: order, file: photo, folder: uploads, actor: context.principal)
            } catch let fault as PhotoFault {
                // Only what went wrong travels, as a code; the page says it in its language.
                let code =
                    switch fault {
                    case .notAnImage: "type"
                    case .tooLarge: "tooLarge"
                    case .tooMany: "tooMany"
                    }
                return .redirect(to: "/app/reports/\(order.id)?photo=\(code)")
            }
        }
        return .redirect(to: "/app/reports/\(order.id)")
    }

    func ownReport(_ context: AppContext) async throws -> WorkOrder {
        let caller = try context.requireCaller()
        guard let order = try await store.workOrder(id: try context.parameters.require("id")),
            order.reporterAccountId == caller.accountId
        else {
            throw Problem.notFound("report")
        }
        return order
    }

    @Sendable func report(_ request: Request, context: AppContext) async throws -> Response {
        let order = try await ownReport(context)
        let steps = try await stepRows(order, context)
        struct Star {
            var value: Int
            var label: String
            var title: String
            var checked: Bool
        }
        let stars = (1...5).reversed().map {
            Star(
                value: $0, label: String(repeating: "★", count: $0),
                title: text("report.stars", context, ["n": "\($0)"]),
                checked: $0 == 5)
        }
        // A photo message only when one was refused, with why.
        let photoProblem = request.uri.queryParameters.get("photo").map { code -> String in
            let reason =
                ["type", "tooLarge", "tooMany"].contains(String(code))
                ? text("report.photo.\(code)", context) : text("report.photo.other", context)
            return text("report.photoProblem", context, ["reason": reason])
        }
        let photos = try await store.photos(of: order).map { "/api/v1/work-orders/\(order.id)/photos/\($0.id)" }
        let canReopen =
            [.resolved, .closed].contains(order.status)
            && order.resolvedAt.map { nowMillis() - $0 <= WorkOrderStep.reopenWindow } == true
        return try pages.render(
            "report",
            [
                "frame": Frame(title: order.title, context: context), "o": order,
                "categoryName": label("workorder.category", order.category.rawValue, context),
                "statusCode": order.status.rawValue,
                "statusText": label("workorder.status", order.status.rawValue, context),
                "stars": stars,
                "created": Self.time(order.createdAt), "due": Self.time(order.dueAt), "steps": steps, "photos": photos,
                "hasPhotos": !photos.isEmpty,
                "canRate": order.status == .resolved, "canReopen": canReopen,
                "rated": order.rating.map { String(repeating: "★", count: $0) } ?? "", "hasRating": order.rating != nil,
                "ratedTitle": order.rating.map { text("report.stars", context, ["n": "\($0)"]) } ?? "",
                "photoProblem": photoProblem ?? "", "hasPhotoProblem": photoProblem != nil,
            ] as [String: Any])
    }

    @Sendable func rateReport(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let order = try await ownReport(context)
        let fields = try await request.formFields(context: context)
        guard let stars = Int(fields["rating"] ?? ""), (1...5).contains(stars) else {
            return .redirect(to: "/app/reports/\(order.id)")
        }
        var details = Store.StepDetails()
        details.rating = stars
        details.note = String((fields["comment"] ?? "").prefix(1_000))
        _ = try await store.takeStep(.rate, on: order.id, details: details, actor: context.principal)
        return .redirect(to: "/app/reports/\(order.id)")
    }

    @Sendable func reopenReport(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let order = try await ownReport(context)
        let fields = try await request.formFields(context: context)
        var details = Store.StepDetails()
        details.note = String((fields["note"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines).prefix(1_000))
        if details.note.isEmpty { details.note = text("report.reopenedNote", context) }
        _ = try await store.takeStep(.reopen, on: order.id, details: details, actor: context.principal)
        return .redirect(to: "/app/reports/\(order.id)")
    }
}
