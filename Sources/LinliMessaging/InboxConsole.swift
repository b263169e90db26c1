import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// The inbox in the portal: the messages, live, and the form for how one is told.
extension WebConsole {
    func registerInbox(_ router: Router<AppContext>) {
        router.get("/app/inbox", use: inboxPage)
        router.get("/app/inbox/stream", use: inboxStream)
        router.post("/app/inbox/read-all", use: inboxReadAll)
        router.post("/app/inbox/preferences", use: inboxPreferences)
    }

    struct InboxRow {
        var id: ID
        var title: String
        var body: String
        var severity: String
        var severityLabel: String
        var hasSeverity: Bool
        var link: String?
        var created: String
        var unread: Bool
    }

    @Sendable func inboxPage(_ request: Request, context: AppContext) async throws -> Response {
        try await renderInbox(context, saved: request.uri.queryParameters.get("saved") == "1")
    }

    func renderInbox(_ context: AppContext, error: Problem? = nil, saved: Bool = false) async throws -> Response {
        let caller = try context.requireCaller()
        let items = try await store.notifications(
            accountId: caller.accountId, unreadOnly: false, page: PageRequest(limit: 50)
        ).items.map {
            InboxRow(
                id: $0.id, title: $0.title, body: $0.body, severity: $0.severity ?? "",
                severityLabel: $0.severity.map { label("inbox.severity", $0, context) } ?? "",
                hasSeverity: !($0.severity ?? "").isEmpty, link: $0.link,
                created: Self.time($0.createdAt), unread: $0.readAt == nil)
        }
        let prefs = API(services: services).preferencesView(
            try await store.notificationPreferences(accountId: caller.accountId))
        var values: [String: Any] = [
            "frame": Frame(title: text("nav.inbox", context), context: context), "items": items,
            "hasItems": !items.isEmpty,
            "unread": try await store.unreadNotifications(accountId: caller.accountId),
            "smsOn": prefs.sms, "emailOn": prefs.email, "phone": prefs.phone ?? "", "address": prefs.address ?? "",
            "quietFrom": prefs.quietFrom ?? "", "quietTo": prefs.quietTo ?? "",
            "smsAvailable": prefs.available.contains("sms"), "emailAvailable": prefs.available.contains("email"),
            "saved": saved,
        ]
        if let error { values["error"] = preferencesError(error, context) }
        var response = try pages.render("inbox", values)
        if error != nil { response.status = .unprocessableContent }
        return response
    }

    /// Why the preferences were refused, in the page's language: the API's field issues (English,
    /// for clients) each told by its key.
    func preferencesError(_ problem: Problem, _ context: AppContext) -> String {
        let keys: [(String, String, String)] = [
            ("phone", "must be a phone number", "inbox.error.phone"),
            ("phone", "is required", "inbox.error.phoneNeeded"),
            ("address", "must be an e-mail", "inbox.error.address"),
            ("address", "is required", "inbox.error.addressNeeded"),
            ("sms", "cannot be turned on", "inbox.error.smsUnavailable"),
            ("email", "cannot be turned on", "inbox.error.emailUnavailable"),
            ("", "give both ends", "inbox.error.quietBoth"),
            ("", "must be a time", "inbox.error.quietTime"),
            ("", "must differ", "inbox.error.quietSame"),
        ]
        var said: [String] = []
        for issue in problem.errors {
            let key = keys.first { (issue.field == $0.0 || $0.0.isEmpty) && issue.reason.hasPrefix($0.1) }?.2
            let line = key.map { text($0, context) } ?? pages.title(of: problem, context.language)
            if !said.contains(line) { said.append(line) }
        }
        return said.isEmpty ? pages.title(of: problem, context.language) : said.joined(separator: " ")
    }

    @Sendable func inboxStream(_ request: Request, context: AppContext) async throws -> Response {
        try await InboxStream.response(store: store, accountId: try context.requireCaller().accountId)
    }

    @Sendable func inboxReadAll(_ request: Request, context: AppContext) async throws -> Response {
        _ = try await store.markNotificationsRead(accountId: try context.requireCaller().accountId, id: nil)
        return .redirect(to: "/app/inbox")
    }

    /// The form sends every field; the phone and address fields start empty (the stored ones are
    /// shown masked beside them), so an empty one keeps what is stored.
    @Sendable func inboxPreferences(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let form = try await request.formFields(context: context)
        let input = API.PreferencesInput(
            sms: form["sms"] == "on", email: form["email"] == "on",
            phone: form["phone"].flatMap { $0.isEmpty ? nil : $0 },
            address: form["address"].flatMap { $0.isEmpty ? nil : $0 },
            quietFrom: form["quietFrom"] ?? "", quietTo: form["quietTo"] ?? "")
        do {
            _ = try await API(services: services).savePreferences(input, context: context)
        } catch let problem as Problem {
            return try await renderInbox(context, error: problem)
        }
        return .redirect(to: "/app/inbox?saved=1")
    }
}
