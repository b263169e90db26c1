import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// Notices (通知公告) with read receipts and confirmations under /api/v1: staff publish to a
/// community, buildings, units, households, care tags or roles; households read and answer; staff
/// follow the progress and call the households that have not answered.
extension API {
    func registerNotices(_ api: RouterGroup<AppContext>) {
        api.get("communities/:cid/notices", use: listNotices)
        api.post("communities/:cid/notices", use: publishNotice)
        api.get("notices/:id", use: getNotice)
        api.get("notices/:id/follow-up", use: noticeFollowUp)
        api.get("notices/:id/answers", use: noticeAnswers)
        api.post("notices/:id/cancel", use: cancelNotice)
        api.get("me/notices", use: myNotices)
        api.post("me/notices/:id/read", use: readNotice)
        api.post("me/notices/:id/answer", use: answerNotice)
    }

    struct NoticeInput: Decodable {
        var title: String
        var body: String
        var audience: NoticeAudience
        var question: String?
        var options: [String]?
        /// Hours households have to answer; after that, the ones still silent are an event
        /// (`notice.unanswered`) that rules can start from.
        var answerWithinHours: Int?
        /// Also text the households' residents on their registered phones.
        var smsResidents: Bool?
        /// When to send it (Unix milliseconds); absent to send it now.
        var sendAt: Millis?
    }

    /// The furthest ahead a notice can be scheduled.
    static let scheduleLimit: Millis = 90 * 86_400_000

    struct NoticeView: Encodable {
        var id: ID
        var communityId: ID
        var title: String
        var body: String
        var audience: NoticeAudience
        var question: String?
        var options: [String]
        var createdBy: String
        var createdAt: Millis
        var answerBy: Millis?
        /// Vacant flats the audience named that it did not go to.
        var vacantLeftOut: Int
        var status: NoticeStatus
        var sendAt: Millis?
        var progress: NoticeProgress?
        init(_ n: Notice, progress: NoticeProgress? = nil) {
            id = n.id
            communityId = n.communityId
            title = n.title
            body = n.body
            audience = n.audienceValue
            question = n.question
            options = n.optionList
            createdBy = n.createdBy
            createdAt = n.createdAt
            answerBy = n.answerBy
            vacantLeftOut = n.vacantLeftOut
            status = n.status
            sendAt = n.sendAt
            self.progress = progress
        }
    }

    static let confirmed = "confirmed"

    @Sendable func publishNotice(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .publishNotices)
        try requireCovers(scope, community.id, .publishNotices)
        let input = try await request.decodeJSON(NoticeInput.self, context: context)
        var v = Validator()
        let title = v.text(input.title, "title", max: 100)
        let body = v.text(input.body, "body", max: 5_000)
        try v.check()
        var issues: [FieldIssue] = []
        if input.audience.isEmpty {
            issues.append(FieldIssue("audience", "name everyone, buildings, units, households, careTags or roles"))
        }
        for (i, role) in (input.audience.roles ?? []).enumerated()
        where Role(rawValue: role) == nil || role == "resident" || role == "platform_admin" {
            issues.append(FieldIssue("audience.roles[\(i)]", "must be a staff role of the community"))
        }
        let question = input.question?.trimmingCharacters(in: .whitespacesAndNewlines)
        var options = (input.options ?? []).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        if let question, !question.isEmpty {
            if question.count > 200 { issues.append(FieldIssue("question", "at most 200 characters")) }
            if options.count < 2 || options.count > 8 || Set(options).count != options.count
                || options.contains(where: { $0.isEmpty || $0.count > 50 })
            {
                issues.append(
                    FieldIssue("options", "a question needs 2 to 8 different answers of at most 50 characters"))
            }
        } else {
            if !options.isEmpty { issues.append(FieldIssue("options", "answers need a question")) }
            options = [Self.confirmed]
        }
        if let hours = input.answerWithinHours, !(1...720).contains(hours) {
            issues.append(FieldIssue("answerWithinHours", "must be from 1 to 720"))
        }
        if input.smsResidents == true, !services.outbound.channels.contains(.sms) {
            issues.append(FieldIssue("smsResidents", "this server has no SMS gateway configured"))
        }
        if let sendAt = input.sendAt, sendAt <= nowMillis() || sendAt > nowMillis() + Self.scheduleLimit {
            issues.append(FieldIssue("sendAt", "must be in the future, at most 90 days ahead"))
        }
        // Every place named must be one of this community's.
        issues += try await store.issuesOutside(
            community.id, .buildings, input.audience.buildings ?? [], field: "audience.buildings")
        issues += try await store.issuesOutside(
            community.id, .units, input.audience.units ?? [], field: "audience.units")
        issues += try await store.issuesOutside(
            community.id, .households, input.audience.households ?? [], field: "audience.households")
        if !issues.isEmpty { throw Problem.invalid(issues) }
        if let sendAt = input.sendAt {
            let notice = try await store.scheduleNotice(
                communityId: community.id, title: title!, body: body!, audience: input.audience,
                question: question?.isEmpty == false ? question : nil, options: options, sendAt: sendAt,
                answerWithinHours: input.answerWithinHours, smsResidents: input.smsResidents == true,
                actor: context.principal)
            return try JSON.response(NoticeView(notice), status: .created)
        }
        let notice = try await store.publishNotice(
            communityId: community.id, title: title!, body: body!, audience: input.audience,
            question: question?.isEmpty == false ? question : nil, options: options,
            answerBy: input.answerWithinHours.map { nowMillis() + Millis($0) * 3_600_000 },
            smsResidents: input.smsResidents == true, actor: context.principal)
        return try JSON.response(NoticeView(notice, progress: try await store.noticeProgress(notice)), status: .created)
    }

    @Sendable func listNotices(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .publishNotices)
        var q = QueryReader(request)
        let page = q.page()
        try q.check()
        let found = try await store.notices(communityId: community.id, page: page)
        var items: [NoticeView] = []
        for n in found.items { items.append(NoticeView(n, progress: try await store.noticeProgress(n))) }
        return try JSON.response(Page(items: items, total: found.total, limit: found.limit, offset: found.offset))
    }

    func publishedNotice(_ context: AppContext) async throws -> Notice {
        let scope = try context.scope(.publishNotices)
        guard let notice = try await store.notice(id: try context.parameters.require("id")),
            scope.coversCommunity(notice.communityId)
        else { throw Problem.notFound("notice") }
        return notice
    }

    @Sendable func getNotice(_ request: Request, context: AppContext) async throws -> Response {
        let notice = try await publishedNotice(context)
        return try JSON.response(NoticeView(notice, progress: try await store.noticeProgress(notice)))
    }

    /// Who has not answered, with phones. A sensitive read: on the audit trail. `?format=csv` exports it.
    @Sendable func noticeFollowUp(_ request: Request, context: AppContext) async throws -> Response {
        let notice = try await publishedNotice(context)
        let csv = try Self.wantsCSV(request)
        let list = try await store.noticeFollowUp(notice)
        try await recordListRead(notice, "followup", csv: csv, households: list.count, context)
        if csv {
            var rows = [["household", "place", "read", "resident", "phone"]]
            for f in list {
                if f.residents.isEmpty { rows.append([f.householdId, f.place, f.read ? "yes" : "no", "", ""]) }
                for r in f.residents { rows.append([f.householdId, f.place, f.read ? "yes" : "no", r.name, r.phone]) }
            }
            return Self.csvAttachment(rows, named: "follow-up-\(notice.id.prefix(8)).csv")
        }
        return try JSON.response(["items": list])
    }

    /// How an answer is shown to people: the stored `confirmed` is a code, and "no answer" is
    /// not an answer at all.
    static func answerLabel(_ answer: String?) -> String {
        guard let answer else { return "未回答 No answer" }
        return answer == confirmed ? "已确认 Confirmed" : answer
    }

    /// Which households gave which answer and which gave none, with residents and phones: the list
    /// to act on ("visit those who said not yet"). Phones make it a sensitive read, on the audit
    /// trail like the follow-up list. `?format=csv` exports it for Excel (UTF-8 with a BOM, Chinese
    /// headers with English beside).
    @Sendable func noticeAnswers(_ request: Request, context: AppContext) async throws -> Response {
        let notice = try await publishedNotice(context)
        let csv = try Self.wantsCSV(request)
        let lists = try await store.noticeAnswerLists(notice)
        try await recordListRead(
            notice, "answers", csv: csv, households: lists.reduce(0) { $0 + $1.households.count }, context)
        if csv {
            var rows = [
                [
                    "回答 Answer", "楼栋 Building", "单元 Unit", "房号 Room", "回答人 Answered by", "回答时间 Answered at (UTC+8)",
                    "住户 Resident", "电话 Phone", "房屋编号 Household ID",
                ]
            ]
            for list in lists {
                for h in list.households {
                    let head = [
                        Self.answerLabel(list.answer), h.building, h.unit, h.room, h.answeredBy ?? "",
                        h.answeredAt.map { Self.time($0) } ?? "",
                    ]
                    if h.residents.isEmpty { rows.append(head + ["", "", h.householdId]) }
                    for r in h.residents { rows.append(head + [r.name, r.phone, h.householdId]) }
                }
            }
            return Self.csvAttachment(rows, named: "answers-\(notice.id.prefix(8)).csv")
        }
        return try JSON.response(["items": lists])
    }

    /// `?format=csv` (an export) or `json` (the default) for a notice's lists of households.
    static func wantsCSV(_ request: Request) throws -> Bool {
        let format = request.uri.queryParameters.get("format") ?? "json"
        guard format == "json" || format == "csv" else { throw Problem.badRequest("format", "must be json or csv") }
        return format == "csv"
    }

    /// The lists name residents with their phones: every view and export is on the audit trail.
    func recordListRead(_ notice: Notice, _ list: String, csv: Bool, households: Int, _ context: AppContext)
        async throws
    {
        try await store.write { db in
            try await AuditLog.record(
                db, actor: context.principal, action: "notice.\(list).\(csv ? "exported" : "viewed")",
                subjectType: "notice", subjectId: notice.id, communityId: notice.communityId,
                after: ["households": "\(households)"])
        }
    }

    /// A CSV download Excel opens as UTF-8 (the BOM first).
    static func csvAttachment(_ rows: [[String]], named name: String) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name)\"",
            ],
            body: .init(byteBuffer: ByteBuffer(string: "\u{FEFF}" + CSV.write(rows))))
    }

    /// Cancels a scheduled notice before it goes out: 409 once it has been sent or cancelled.
    @Sendable func cancelNotice(_ request: Request, context: AppContext) async throws -> Response {
        // Found only when the caller's publishNotices scope covers the notice's community.
        let notice = try await publishedNotice(context)
        return try JSON.response(NoticeView(try await store.cancelScheduledNotice(notice, actor: context.principal)))
    }

    // MARK: residents

    /// The households a caller answers for: their own homes.
    func homes(_ context: AppContext) throws -> [ID] {
        try context.requireCaller().bindings.filter { $0.role == .resident }.compactMap(\.householdId)
    }

    struct MyNotice: Encodable {
        var notice: NoticeView
        var householdId: ID
        var readAt: Millis?
        var answer: String?
        var answeredAt: Millis?
        var answeredBy: String?
    }

    @Sendable func myNotices(_ request: Request, context: AppContext) async throws -> Response {
        let items = try await store.notices(forHouseholds: try homes(context)).map { n, r in
            MyNotice(
                notice: NoticeView(n), householdId: r.householdId, readAt: r.readAt, answer: r.answer,
                answeredAt: r.answeredAt, answeredBy: r.answeredBy)
        }
        return try JSON.response(["items": items])
    }

    /// A notice that reached one of the caller's homes, and which home.
    func myNotice(_ context: AppContext) async throws -> (Notice, householdId: ID) {
        let id = try context.parameters.require("id")
        guard
            let (notice, receipt) = try await store.notices(forHouseholds: try homes(context)).first(where: {
                $0.0.id == id
            })
        else { throw Problem.notFound("notice") }
        return (notice, receipt.householdId)
    }

    @Sendable func readNotice(_ request: Request, context: AppContext) async throws -> Response {
        let (notice, household) = try await myNotice(context)
        let reader = try context.requireCaller()
        try await store.markNoticeRead(
            notice, householdId: household, by: reader.displayName, accountId: reader.accountId)
        return Response(status: .noContent)
    }

    struct AnswerInput: Decodable { var answer: String }

    @Sendable func answerNotice(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (notice, household) = try await myNotice(context)
        let input = try await request.decodeJSON(AnswerInput.self, context: context)
        guard notice.optionList.contains(input.answer) else {
            throw Problem.invalid([FieldIssue("answer", "must be one of \(notice.optionList.joined(separator: ", "))")])
        }
        try await store.answerNotice(notice, householdId: household, answer: input.answer, actor: context.principal)
        return Response(status: .noContent)
    }
}
