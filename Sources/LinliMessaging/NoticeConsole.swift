import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// Notices in the console (compose, follow progress live, the follow-up list) and in the portal
/// (read, confirm or answer).
extension WebConsole {
    func registerNotices(_ router: Router<AppContext>) {
        router.get("/console/c/:cid/notices", use: noticeList)
        router.post("/console/c/:cid/notices", use: composeNotice)
        router.get("/console/notices/:id", use: noticeProgressPage)
        router.get("/console/notices/:id/stream", use: noticeStream)
        router.post("/console/notices/:id/cancel", use: cancelNoticePage)
        router.get("/app/notices", use: portalNotices)
        router.get("/app/notices/:id", use: portalNotice)
        router.post("/app/notices/:id/answer", use: portalAnswer)
    }

    struct NoticeRow {
        var id: ID
        var title: String
        var created: String
        var households: Int
        var read: Int
        var answered: Int
        var status: String
        var state: String
    }

    /// 已排期 and the time in the community's zone (the console's pages are in UTC+8).
    func noticeState(_ n: Notice, _ context: AppContext) -> String {
        switch n.status {
        case .scheduled: text("notice.state.scheduled", context, ["time": Self.scheduleTime(n.sendAt)])
        case .cancelled, .sent: label("notice.state", n.status.rawValue, context)
        }
    }

    /// An answer as the page shows it: the stored `confirmed` is a code, and no answer is none.
    func answerLabel(_ answer: String?, _ context: AppContext) -> String {
        guard let answer else { return text("notice.answer.none", context) }
        return answer == API.confirmed ? text("notice.answer.confirmed", context) : answer
    }

    /// What the resident's button says for an option.
    func choiceLabel(_ option: String, _ context: AppContext) -> String {
        option == API.confirmed ? text("notice.choice.confirmed", context) : option
    }

    /// Whom a stored account name (a username) is shown as: the account's display name when there
    /// is one, each looked up once.
    func displayNames(_ usernames: some Sequence<String>) async throws -> [String: String] {
        var names: [String: String] = [:]
        for username in Set(usernames) where !username.isEmpty {
            names[username] = try await store.account(username: username)?.displayName ?? username
        }
        return names
    }

    static func scheduleTime(_ millis: Millis?) -> String { String(time(millis).prefix(16)) }

    /// A `datetime-local` value ("2026-12-08T09:30") read as a time in UTC+8.
    static func sendAt(_ value: String) -> Millis? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "Asia/Shanghai")
        for format in ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: value) { return Millis(date.timeIntervalSince1970 * 1000) }
        }
        return nil
    }

    @Sendable func noticeList(_ request: Request, context: AppContext) async throws -> Response {
        try await noticeListPage(context, error: nil, status: .ok)
    }

    /// The notice as a resident's page will show it, and whom it would reach, before it is sent.
    struct NoticePreview {
        var title: String
        var body: String
        var question: String?
        var choices: [String]
        var households: Int
        var vacant: Int
        var hasVacant: Bool
    }

    func noticeListPage(
        _ context: AppContext, error: String?, status: HTTPResponse.Status, draft: [String: String] = [:],
        preview: NoticePreview? = nil
    ) async throws -> Response {
        let (community, _) = try await self.community(context, .publishNotices)
        var rows: [NoticeRow] = []
        for n in try await store.notices(communityId: community.id, page: PageRequest(limit: 50)).items {
            let p = try await store.noticeProgress(n)
            rows.append(
                NoticeRow(
                    id: n.id, title: n.title, created: Self.time(n.createdAt), households: p.households, read: p.read,
                    answered: p.answered, status: n.status.rawValue, state: noticeState(n, context)))
        }
        // Several buildings and units can be chosen at once; what was chosen stays chosen when the
        // form comes back with an error.
        let chosenBuildings = Set((draft["buildings"] ?? "").split(separator: ",").map(String.init))
        let chosenUnits = Set((draft["units"] ?? "").split(separator: ",").map(String.init))
        struct UnitGroup {
            var building: String
            var units: [SelectOption]
        }
        var buildings: [SelectOption] = []
        var unitGroups: [UnitGroup] = []
        let all = try await store.buildings(communityId: community.id, scope: .everything)
        for b in all.sorted(by: { RoomOrder.precedes($0.name, $1.name) }) {
            buildings.append(SelectOption(value: b.id, label: b.name, selected: chosenBuildings.contains(b.id)))
            let units = try await store.units(buildingId: b.id, scope: .everything)
                .filter { $0.communityId == community.id }
                .sorted { RoomOrder.precedes($0.name, $1.name) }
                .map {
                    SelectOption(value: $0.id, label: "\(b.name) \($0.name)", selected: chosenUnits.contains($0.id))
                }
            if !units.isEmpty { unitGroups.append(UnitGroup(building: b.name, units: units)) }
        }
        let chosenCareTag = draft["careTags"] ?? ""
        return try pages.render(
            "notices",
            [
                "frame": Frame(title: text("nav.notices", context), context: context, community: community),
                "notices": rows,
                "hasNotices": !rows.isEmpty,
                "buildings": buildings, "unitGroups": unitGroups,
                "toPlaces": draft["to"] == "places" || draft["to"] == "buildings",
                "toCareTags": draft["to"] == "careTags",
                "toEveryone": !["places", "buildings", "careTags"].contains(draft["to"] ?? ""),
                "careTags": CareTag.allCases.map {
                    SelectOption(
                        value: $0.rawValue, label: label("notice.careTag", $0.rawValue, context),
                        selected: $0.rawValue == chosenCareTag)
                },
                "error": error ?? "", "hasError": error != nil, "title": draft["title"] ?? "",
                "body": draft["body"] ?? "",
                "question": draft["question"] ?? "", "options": draft["options"] ?? "",
                "answerWithinHours": draft["answerWithinHours"] ?? "", "sendAt": draft["sendAt"] ?? "",
                "smsAvailable": services.outbound.channels.contains(.sms),
                "hasPreview": preview != nil, "preview": preview as Any,
            ] as [String: Any], status: status)
    }

    /// The composer posts a form; it goes through the same checks as the API.
    @Sendable func composeNotice(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .publishNotices)
        try API(services: services).requireCovers(scope, community.id, .publishNotices)
        let f = try await request.formFields(context: context)
        var audience = NoticeAudience()
        func ids(_ field: String) -> [ID]? {
            let list = (f[field] ?? "").split(separator: ",").map(String.init)
            return list.isEmpty ? nil : list
        }
        switch f["to"] ?? "everyone" {
        // "buildings" is what the form sent when it had one select; a page still open from then works.
        case "places", "buildings":
            audience.buildings = ids("buildings")
            audience.units = ids("units")
        case "careTags":
            audience.careTags = (f["careTags"] ?? "").split(separator: ",").compactMap { CareTag(rawValue: String($0)) }
        default: audience.everyone = true
        }
        let question = (f["question"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let options = (f["options"] ?? "").split(whereSeparator: { $0 == "/" || $0 == "\n" }).map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        let title = (f["title"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let body = (f["body"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...100).contains(title.count), (1...5_000).contains(body.count) else {
            return try await noticeListPage(
                context, error: text("notice.error.titleBody", context), status: .unprocessableContent,
                draft: f)
        }
        if !question.isEmpty, options.count < 2 || options.count > 8 || Set(options).count != options.count {
            return try await noticeListPage(
                context, error: text("notice.error.options", context),
                status: .unprocessableContent, draft: f)
        }
        if audience.isEmpty {
            return try await noticeListPage(
                context, error: text("notice.error.audience", context), status: .unprocessableContent,
                draft: f)
        }
        // The same check as the API: every building and unit chosen must be this community's.
        let outside =
            try await store.issuesOutside(community.id, .buildings, audience.buildings ?? [], field: "buildings")
            + store.issuesOutside(community.id, .units, audience.units ?? [], field: "units")
        if !outside.isEmpty {
            return try await noticeListPage(
                context, error: text("notice.error.outside", context),
                status: .unprocessableContent, draft: f)
        }
        let within = (f["answerWithinHours"] ?? "").trimmingCharacters(in: .whitespaces)
        let hours = Int(within)
        if !within.isEmpty, hours.map({ !(1...720).contains($0) }) ?? true {
            return try await noticeListPage(
                context, error: text("notice.error.answerWithin", context), status: .unprocessableContent,
                draft: f)
        }
        // 预览 Preview: the same checks, then the resident's view and the reach; nothing is sent
        // and the form comes back as it was, to be sent or changed.
        if f["intent"] == "preview" {
            let options = question.isEmpty ? [API.confirmed] : options
            let reach = try await store.noticeReach(communityId: community.id, audience)
            return try await noticeListPage(
                context, error: nil, status: .ok, draft: f,
                preview: NoticePreview(
                    title: title, body: body, question: question.isEmpty ? nil : question,
                    // Labelled as the resident's page labels them.
                    choices: options.map { choiceLabel($0, context) },
                    households: reach.households, vacant: reach.vacant, hasVacant: reach.vacant > 0))
        }
        let when = (f["sendAt"] ?? "").trimmingCharacters(in: .whitespaces)
        if !when.isEmpty {
            guard let sendAt = Self.sendAt(when), sendAt > nowMillis(), sendAt <= nowMillis() + API.scheduleLimit else {
                return try await noticeListPage(
                    context, error: text("notice.error.sendAt", context),
                    status: .unprocessableContent, draft: f)
            }
            let notice = try await store.scheduleNotice(
                communityId: community.id, title: title, body: body, audience: audience,
                question: question.isEmpty ? nil : question, options: question.isEmpty ? [API.confirmed] : options,
                sendAt: sendAt, answerWithinHours: hours,
                smsResidents: f["smsResidents"] == "on" && services.outbound.channels.contains(.sms),
                actor: context.principal)
            return .redirect(to: "/console/notices/\(notice.id)")
        }
        let notice = try await store.publishNotice(
            communityId: community.id, title: title, body: body, audience: audience,
            question: question.isEmpty ? nil : question,
            options: question.isEmpty ? [API.confirmed] : options,
            answerBy: hours.map { nowMillis() + Millis($0) * 3_600_000 },
            smsResidents: f["smsResidents"] == "on" && services.outbound.channels.contains(.sms),
            actor: context.principal)
        return .redirect(to: "/console/notices/\(notice.id)")
    }

    @Sendable func noticeProgressPage(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        let notice = try await API(services: services).publishedNotice(context)
        let community = try await store.community(
            notice.communityId, scope: .everything, memberships: caller.communityIds)
        let progress = try await store.noticeProgress(notice)
        let followUp = try await store.noticeFollowUp(notice)
        try await store.write { db in
            try await AuditLog.record(
                db, actor: context.principal, action: "notice.followup.viewed", subjectType: "notice",
                subjectId: notice.id,
                communityId: notice.communityId, after: ["households": "\(followUp.count)"])
        }
        struct AnswerRow {
            var answer: String
            var count: Int
        }
        struct FollowRow {
            var place: String
            var read: Bool
            var people: String
        }
        struct ListRow {
            var place: String
            var by: String
            var people: String
        }
        struct AnswerGroup {
            var label: String
            var count: Int
            var rows: [ListRow]
            var hasRows: Bool
            var isNone: Bool
        }
        // Per-answer lists only where there is a question: "I have read this" has one answer,
        // and those who gave none are the follow-up list already.
        let hasQuestion = notice.question != nil
        var groups: [AnswerGroup] = []
        if hasQuestion {
            let lists = try await store.noticeAnswerLists(notice)
            let names = try await displayNames(lists.flatMap { $0.households.compactMap(\.answeredBy) })
            for list in lists {
                let rows =
                    list.answer == nil
                    ? []
                    : list.households.map { h in
                        ListRow(
                            place: h.place,
                            by: [h.answeredBy.map { names[$0] ?? $0 }, h.answeredAt.map { Self.time($0) }]
                                .compactMap { $0 }.joined(separator: " "),
                            people: h.residents.map { "\($0.name) \($0.phone)" }.joined(separator: "；"))
                    }
                groups.append(
                    AnswerGroup(
                        label: answerLabel(list.answer, context), count: list.households.count, rows: rows,
                        hasRows: !rows.isEmpty, isNone: list.answer == nil))
            }
            let listed = groups.reduce(0) { $0 + $1.count }
            try await store.write { db in
                try await AuditLog.record(
                    db, actor: context.principal, action: "notice.answers.viewed", subjectType: "notice",
                    subjectId: notice.id, communityId: notice.communityId, after: ["households": "\(listed)"])
            }
        }
        let object: [String: Any] = [
            "frame": Frame(title: notice.title, context: context, community: community), "n": notice, "p": progress,
            "createdByName": try await displayNames([notice.createdBy])[notice.createdBy] ?? notice.createdBy,
            "answers": notice.optionList.map {
                AnswerRow(answer: answerLabel($0, context), count: progress.answers[$0] ?? 0)
            },
            "answerLists": groups, "hasAnswerLists": hasQuestion,
            "followUp": followUp.map {
                FollowRow(
                    place: $0.place, read: $0.read,
                    people: $0.residents.map { "\($0.name) \($0.phone)" }.joined(separator: "；"))
            },
            "hasFollowUp": !followUp.isEmpty,
            "isSent": notice.status == .sent, "isScheduled": notice.status == .scheduled,
            "isCancelled": notice.status == .cancelled, "sendAtText": Self.scheduleTime(notice.sendAt),
            // A section over an Int renders even for 0, so the page is told whether to say it.
            "hasVacantLeftOut": notice.vacantLeftOut > 0,
            "hasOutbound": !progress.outbound.isEmpty, "outboundSent": progress.outbound["sent"] ?? 0,
            "outboundTotal": progress.outbound.values.reduce(0, +), "outboundFailed": progress.outbound["failed"] ?? 0,
        ]
        return try pages.render(
            request.uri.queryParameters.get("partial") == "1" ? "notice-progress" : "notice", object)
    }

    /// The console's cancel button: the API's cancel, then back to the notice.
    @Sendable func cancelNoticePage(_ request: Request, context: AppContext) async throws -> Response {
        let notice = try await API(services: services).publishedNotice(context)
        _ = try await store.cancelScheduledNotice(notice, actor: context.principal)
        return .redirect(to: "/console/notices/\(notice.id)")
    }

    /// Says only that an answer came in; the page fetches its progress again.
    @Sendable func noticeStream(_ request: Request, context: AppContext) async throws -> Response {
        let notice = try await API(services: services).publishedNotice(context)
        let store = self.store
        var only = Scope()
        only.communities = [notice.communityId]
        let scope = only
        let start = try await store.read { db in try await EventLog.latestSeq(db) }
        let noticeId = notice.id
        return EventStream.response(store: store, scope: scope, after: start) { event in
            event.type == "notice.answered" && event.subjectId == noticeId ? ("answered", noticeId) : nil
        }
    }

    // MARK: portal

    struct PortalNoticeRow {
        var id: ID
        var title: String
        var created: String
        var read: Bool
        var answer: String?
    }

    @Sendable func portalNotices(_ request: Request, context: AppContext) async throws -> Response {
        let homes = try API(services: services).homes(context)
        let rows = try await store.notices(forHouseholds: homes).map { n, r in
            PortalNoticeRow(
                id: n.id, title: n.title, created: Self.time(n.createdAt), read: r.readAt != nil,
                answer: r.answer.map { answerLabel($0, context) })
        }
        return try pages.render(
            "my-notices",
            [
                "frame": Frame(title: text("nav.notices", context), context: context), "notices": rows,
                "hasNotices": !rows.isEmpty,
            ]
                as [String: Any])
    }

    /// Opening a notice counts as reading it for the household.
    @Sendable func portalNotice(_ request: Request, context: AppContext) async throws -> Response {
        let api = API(services: services)
        let (notice, household) = try await api.myNotice(context)
        let reader = try context.requireCaller()
        try await store.markNoticeRead(
            notice, householdId: household, by: reader.displayName, accountId: reader.accountId)
        let receipt = try await store.notices(forHouseholds: [household]).first { $0.0.id == notice.id }?.1
        struct Choice {
            var value: String
            var label: String
            var chosen: Bool
        }
        let choices = notice.optionList.map {
            Choice(value: $0, label: choiceLabel($0, context), chosen: receipt?.answer == $0)
        }
        let answeredBy = try await receipt?.answeredBy.asyncMap { try await displayNames([$0])[$0] ?? $0 }
        return try pages.render(
            "my-notice",
            [
                "frame": Frame(title: notice.title, context: context), "n": notice, "choices": choices,
                "answered": receipt?.answer != nil, "hasAnsweredBy": answeredBy != nil, "answeredBy": answeredBy ?? "",
            ] as [String: Any])
    }

    @Sendable func portalAnswer(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (notice, household) = try await API(services: services).myNotice(context)
        let answer = try await request.formFields(context: context)["answer"] ?? ""
        guard notice.optionList.contains(answer) else { return .redirect(to: "/app/notices/\(notice.id)") }
        try await store.answerNotice(notice, householdId: household, answer: answer, actor: context.principal)
        return .redirect(to: "/app/notices/\(notice.id)")
    }
}
