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
        router.get("/app/reports/:id/stream", use: reportStream)
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
        category: String = "", fields: [String: String] = [:]
    ) throws -> Response {
        let slot = fields["visitSlot"] ?? ""
        return try pages.render(
            "report-new",
            [
                "frame": Frame(title: text("report.new", context), context: context),
                "categories": WorkOrderCategory.allCases.map {
                    SelectOption(
                        value: $0.rawValue, label: label("workorder.category", $0.rawValue, context),
                        selected: $0.rawValue == category)
                },
                "error": error ?? "", "hasError": error != nil, "title": title, "description": description,
                "atHome": fields["place"] != "public", "location": fields["location"] ?? "",
                "visitDate": fields["visitDate"] ?? "", "today": Self.day(nowMillis()),
                "lastDay": Self.day(nowMillis() + 30 * 86_400_000),
                "slots": VisitSlot.allCases.map {
                    SelectOption(
                        value: $0.rawValue, label: label("report.slot", $0.rawValue, context),
                        selected: $0.rawValue == slot)
                },
            ] as [String: Any], status: status)
    }

    /// When a resident would like someone to come: a part of a day, in Beijing time.
    enum VisitSlot: String, CaseIterable {
        case morning, afternoon, evening
        var hours: (from: Int, to: Int) {
            switch self {
            case .morning: (9, 12)
            case .afternoon: (14, 18)
            case .evening: (18, 21)
            }
        }
    }

    static var beijing: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        return calendar
    }

    /// "2026-12-09" for an instant, in Beijing.
    static func day(_ millis: Millis) -> String {
        let parts = beijing.dateComponents(
            [.year, .month, .day], from: Date(timeIntervalSince1970: Double(millis) / 1000))
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }

    /// The window of `slot` on `day` (YYYY-MM-DD), from today to 30 days ahead; nil for anything else.
    static func visitWindow(day: String, slot: String, now: Millis = nowMillis()) -> (from: Millis, to: Millis)? {
        let parts = day.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, let slot = VisitSlot(rawValue: slot),
            let start = beijing.date(
                from: DateComponents(year: parts[0], month: parts[1], day: parts[2], hour: slot.hours.from)),
            day == Self.day(Millis(start.timeIntervalSince1970 * 1000)), day >= Self.day(now),
            day <= Self.day(now + 30 * 86_400_000)
        else { return nil }
        let from = Millis(start.timeIntervalSince1970 * 1000)
        return (from, from + Millis(slot.hours.to - slot.hours.from) * 3_600_000)
    }

    /// "2026-12-09 09:00–12:00 (UTC+8)", or nil without a window.
    static func visitText(_ order: WorkOrder) -> String? {
        guard let from = order.preferredFrom, let to = order.preferredTo else { return nil }
        let end = time(to).suffix(8).prefix(5)
        return "\(time(from).prefix(16))–\(end) (UTC+8)"
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
        let fields = [
            "place": field("place"), "location": field("location"), "visitDate": field("visitDate"),
            "visitSlot": field("visitSlot"),
        ]
        func refuse(_ key: String) throws -> Response {
            try reportForm(
                context, error: text(key, context), status: .unprocessableContent, title: title,
                description: description, category: category.rawValue, fields: fields)
        }
        guard (1...100).contains(title.count), description.count <= 2_000 else {
            return try refuse("report.error.title")
        }
        // Where: the reporter's home, or a public part of the community they name.
        let inPublic = field("place") == "public"
        let spot = field("location").trimmingCharacters(in: .whitespacesAndNewlines)
        if inPublic && !(1...200).contains(spot.count) { return try refuse("report.error.location") }
        // When someone may come: only to a home, and then only if asked for.
        var window: (from: Millis, to: Millis)? = nil
        if !inPublic, !field("visitDate").isEmpty || !field("visitSlot").isEmpty {
            guard let w = Self.visitWindow(day: field("visitDate"), slot: field("visitSlot")) else {
                return try refuse("report.error.visit")
            }
            window = w
        }
        let household =
            home.householdId.isEmpty ? nil : try? await store.household(home.householdId, scope: .everything)
        var report = WorkOrderReport(
            communityId: home.communityId, category: category, title: title, description: description,
            source: caller.isResidentOnly ? .resident : .staff,
            reporterAccountId: caller.accountId, reporterName: caller.displayName,
            householdId: inPublic ? nil : household?.id, buildingId: inPublic ? nil : household?.buildingId,
            location: inPublic ? spot : household.map { "\($0.buildingName) \($0.unitName) \($0.room)" } ?? "")
        report.preferredFrom = window?.from
        report.preferredTo = window?.to
        let order = try await store.submitWorkOrder(report, actor: context.principal)
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
        let photos = try await photoViews(order)
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
                "visit": Self.visitText(order) ?? "", "hasVisit": order.preferredFrom != nil,
                "hasLocation": !order.location.isEmpty,
            ] as [String: Any])
    }

    /// Says only that this report changed (a step, a photo), for the page to show it again.
    @Sendable func reportStream(_ request: Request, context: AppContext) async throws -> Response {
        let order = try await ownReport(context)
        var scope = Scope()
        scope.communities = [order.communityId]
        let start = try await store.read { db in try await EventLog.latestSeq(db) }
        let id = order.id
        return EventStream.response(store: store, scope: scope, after: start) { event in
            event.subjectId == id && event.type.hasPrefix("workorder.") ? ("report", event.type) : nil
        }
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
