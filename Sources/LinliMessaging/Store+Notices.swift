import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

/// Who a notice is for: the whole community, or buildings, units, households, households where
/// someone has one of the care tags, and (in their inboxes only) staff by role.
public struct NoticeAudience: Codable, Sendable, Equatable {
    public var everyone: Bool?
    public var buildings: [ID]?
    public var units: [ID]?
    public var households: [ID]?
    public var careTags: [CareTag]?
    public var roles: [String]?
    public init(
        everyone: Bool? = nil, buildings: [ID]? = nil, units: [ID]? = nil, households: [ID]? = nil,
        careTags: [CareTag]? = nil, roles: [String]? = nil
    ) {
        self.everyone = everyone
        self.buildings = buildings
        self.units = units
        self.households = households
        self.careTags = careTags
        self.roles = roles
    }
    public var isEmpty: Bool {
        everyone != true && (buildings ?? []).isEmpty && (units ?? []).isEmpty && (households ?? []).isEmpty
            && (careTags ?? []).isEmpty && (roles ?? []).isEmpty
    }
}

/// Where a notice stands: waiting for its send time, sent, or cancelled before it went out.
public enum NoticeStatus: String, Codable, Sendable {
    case scheduled, sent, cancelled
}

public struct Notice: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var title: String
    public var body: String
    /// The audience as JSON.
    public var audience: String
    /// A question households answer ("vaccinated?"), or nil for "I have read this".
    public var question: String?
    /// The answers to choose from, as a JSON list; `["confirmed"]` when there is no question.
    public var options: String
    /// Households reached.
    public var households: Int
    public var createdBy: String
    public var createdAt: Millis
    /// When households should have answered by; nil for no deadline.
    public var answerBy: Millis?
    /// When the deadline passed with households still silent (`notice.unanswered` on the log).
    public var unansweredAt: Millis?
    /// Vacant flats the audience named but the notice did not go to: nobody lives there to read it,
    /// so counting them would only show as households that never answer.
    public var vacantLeftOut: Int = 0
    public var status: NoticeStatus = .sent
    /// When a scheduled notice goes (or went) out; nil for one sent as it was written.
    public var sendAt: Millis?
    /// For a scheduled notice, what applies when it goes out: the deadline counts from then.
    public var answerWithinHours: Int?
    public var smsResidents: Bool = false

    public var optionList: [String] { (try? JSONDecoder().decode([String].self, from: Data(options.utf8))) ?? [] }
    public var audienceValue: NoticeAudience {
        (try? JSONDecoder().decode(NoticeAudience.self, from: Data(audience.utf8))) ?? NoticeAudience()
    }
}

extension Notice: Record { public static let table = "notices" }

public struct NoticeReceipt: Codable, Sendable, Equatable {
    public var noticeId: ID
    public var householdId: ID
    public var communityId: ID
    public var deliveredAt: Millis
    public var readAt: Millis?
    public var readBy: String?
    public var answer: String?
    public var answeredAt: Millis?
    public var answeredBy: String?
}

/// How far a notice has got: households reached, read, answered, and the answers.
public struct NoticeProgress: Codable, Sendable, Equatable {
    public var households: Int
    public var read: Int
    public var answered: Int
    public var answers: [String: Int]
    /// Its texts and e-mails (copies of inbox messages, and texts to registered phones) by status.
    public var outbound: [String: Int]
}

/// A household that has not answered yet, with who lives there and their phones: to call or visit.
public struct FollowUp: Codable, Sendable, Equatable {
    public struct Resident: Codable, Sendable, Equatable {
        public var name: String
        public var phone: String
    }
    public var householdId: ID
    public var place: String
    public var read: Bool
    public var residents: [Resident]
}

/// The households that gave one answer (or, with `answer` nil, none) to a notice.
public struct AnswerList: Codable, Sendable, Equatable {
    public struct Household: Codable, Sendable, Equatable {
        public var householdId: ID
        public var building: String
        public var unit: String
        public var room: String
        public var place: String
        public var read: Bool
        public var answer: String?
        public var answeredBy: String?
        public var answeredAt: Millis?
        public var residents: [FollowUp.Resident]
    }
    public var answer: String?
    public var households: [Household]
}

extension Store {
    /// Households the audience reaches in the community: the occupied ones (owner-occupied or
    /// rented), and how many vacant ones it named and left out (told to whoever sends it).
    package func audienceHouseholds(
        _ db: any SQLDatabase, communityId: ID, _ a: NoticeAudience
    ) async throws -> (occupied: [ID], vacant: Int) {
        struct Row: Decodable {
            var id: ID
            var occupancy: String
        }
        var parts: [SQLQueryString] = []
        if a.everyone == true { parts.append("1 = 1") }
        if let b = a.buildings, !b.isEmpty { parts.append(.isIn("h.building_id", Set(b))) }
        if let u = a.units, !u.isEmpty { parts.append(.isIn("h.unit_id", Set(u))) }
        if let h = a.households, !h.isEmpty { parts.append(.isIn("h.id", Set(h))) }
        for tag in a.careTags ?? [] {
            parts.append(
                """
                EXISTS (SELECT 1 FROM residencies r JOIN people p ON p.id = r.person_id WHERE r.household_id = h.id AND r.moved_out IS NULL
                        AND p.care_tags LIKE \(bind: "%,\(tag.rawValue),%"))
                """)
        }
        guard !parts.isEmpty else { return ([], 0) }
        let rows = try await db.raw(
            "SELECT h.id, h.occupancy FROM households h WHERE h.community_id = \(bind: communityId) AND (\(SQLQueryString.any(parts))) ORDER BY h.id"
        )
        .all(decoding: Row.self)
        let vacant = Occupancy.vacant.rawValue
        return (rows.filter { $0.occupancy != vacant }.map(\.id), rows.filter { $0.occupancy == vacant }.count)
    }

    /// How many households a notice to this audience would reach now, and how many vacant ones
    /// it would leave out: for the preview before sending; nothing is written.
    public func noticeReach(communityId: ID, _ audience: NoticeAudience) async throws -> (households: Int, vacant: Int)
    {
        try await read { db in
            let (occupied, vacant) = try await self.audienceHouseholds(db, communityId: communityId, audience)
            return (occupied.count, vacant)
        }
    }

    /// Publishes a notice: a receipt row per household reached, an inbox message for every account
    /// of those households and for staff in the roles named, and one event saying how many.
    /// With `smsResidents`, the households' current residents also get it by SMS on their
    /// registered phones (for those who have no account, or never open it).
    public func publishNotice(
        communityId: ID, title: String, body: String, audience: NoticeAudience, question: String?, options: [String],
        answerBy: Millis? = nil, smsResidents: Bool = false, actor: Principal
    ) async throws -> Notice {
        let now = nowMillis()
        return try await write { db in
            var notice = Notice(
                id: newID(), communityId: communityId, title: title, body: body,
                audience: String(decoding: try JSONEncoder().encode(audience), as: UTF8.self), question: question,
                options: String(decoding: try JSONEncoder().encode(options), as: UTF8.self),
                households: 0, createdBy: actor.name, createdAt: now, answerBy: answerBy, smsResidents: smsResidents)
            try await self.deliver(db, &notice, now: now, actor: actor, scheduled: false)
            return notice
        }
    }

    /// Keeps a notice to go out at `sendAt`: nobody is reached until then (`sendDueNotices`), and
    /// it can be cancelled before.
    public func scheduleNotice(
        communityId: ID, title: String, body: String, audience: NoticeAudience, question: String?, options: [String],
        sendAt: Millis, answerWithinHours: Int? = nil, smsResidents: Bool = false, actor: Principal
    ) async throws -> Notice {
        let now = nowMillis()
        return try await write { db in
            let notice = Notice(
                id: newID(), communityId: communityId, title: title, body: body,
                audience: String(decoding: try JSONEncoder().encode(audience), as: UTF8.self), question: question,
                options: String(decoding: try JSONEncoder().encode(options), as: UTF8.self),
                households: 0, createdBy: actor.name, createdAt: now, status: .scheduled, sendAt: sendAt,
                answerWithinHours: answerWithinHours, smsResidents: smsResidents)
            try await db.insert(notice)
            try await Change.record(
                db, actor: actor, communityId: communityId, type: "notice.scheduled", subjectType: "notice",
                subjectId: notice.id, after: ["title": title, "sendAt": "\(sendAt)"])
            return notice
        }
    }

    /// Sends the scheduled notices whose time has come (the outbound worker looks at start and
    /// every half minute); each goes out once, as its author would have sent it then.
    @discardableResult
    public func sendDueNotices(now: Millis = nowMillis()) async throws -> [Notice] {
        // Read first, so an idle check costs no write.
        let anyDue = try await read { db in
            try await db.count(
                "SELECT COUNT(*) AS n FROM notices WHERE status = 'scheduled' AND send_at <= \(bind: now)")
        }
        guard anyDue > 0 else { return [] }
        return try await write { db in
            let due = try await db.all(
                Notice.self,
                "SELECT * FROM notices WHERE status = 'scheduled' AND send_at <= \(bind: now) ORDER BY send_at, id LIMIT 20"
            )
            var sent: [Notice] = []
            for var notice in due {
                notice.answerBy = notice.answerWithinHours.map { now + Millis($0) * 3_600_000 }
                let author = Principal(accountId: nil, name: notice.createdBy)
                if try await self.deliver(db, &notice, now: now, actor: author, scheduled: true) { sent.append(notice) }
            }
            return sent
        }
    }

    /// Cancels a notice still waiting for its send time; one already sent or cancelled is a conflict.
    public func cancelScheduledNotice(_ notice: Notice, actor: Principal) async throws -> Notice {
        try await write { db in
            let rows = try await db.raw(
                """
                UPDATE notices SET status = 'cancelled' WHERE id = \(bind: notice.id) AND community_id = \(bind: notice.communityId)
                AND status = 'scheduled' RETURNING id
                """
            ).all()
            guard !rows.isEmpty else {
                throw StoreError.conflict(field: "status", reason: "only a scheduled notice can be cancelled")
            }
            try await Change.record(
                db, actor: actor, communityId: notice.communityId, type: "notice.cancelled", subjectType: "notice",
                subjectId: notice.id, after: ["title": notice.title])
            var cancelled = notice
            cancelled.status = .cancelled
            return cancelled
        }
    }

    /// Reaches the notice's audience: a receipt row per occupied household, an inbox message for
    /// every account of those households and for staff in the roles named, texts when asked, and
    /// one event saying how many. A scheduled notice's row is marked sent first, only if it is still
    /// scheduled (a cancel that got in first wins); false when it was not.
    @discardableResult
    func deliver(
        _ db: any SQLDatabase, _ notice: inout Notice, now: Millis, actor: Principal, scheduled: Bool
    ) async throws -> Bool {
        let communityId = notice.communityId
        let audience = notice.audienceValue
        let (households, vacant) = try await self.audienceHouseholds(db, communityId: communityId, audience)
        notice.households = households.count
        notice.vacantLeftOut = vacant
        notice.status = .sent
        if scheduled {
            let rows = try await db.raw(
                """
                UPDATE notices SET status = 'sent', households = \(bind: households.count), vacant_left_out = \(bind: vacant),
                answer_by = \(bind: notice.answerBy) WHERE id = \(bind: notice.id) AND status = 'scheduled' RETURNING id
                """
            ).all()
            guard !rows.isEmpty else { return false }
        } else {
            try await db.insert(notice)
        }
        for h in households {
            try await db.raw(
                "INSERT INTO notice_receipts (notice_id, household_id, community_id, delivered_at) VALUES (\(bind: notice.id), \(bind: h), \(bind: communityId), \(bind: now))"
            ).run()
        }
        struct Account: Decodable { var accountId: ID }
        var accounts: [ID] = []
        if !households.isEmpty {
            accounts += try await db.raw(
                "SELECT DISTINCT account_id FROM role_bindings WHERE role = 'resident' AND \(SQLQueryString.isIn("household_id", Set(households)))"
            )
            .all(decoding: Account.self, keyDecodingStrategy: .snakeCase).map(\.accountId)
        }
        if let roles = audience.roles, !roles.isEmpty {
            accounts += try await db.raw(
                "SELECT DISTINCT account_id FROM role_bindings WHERE community_id = \(bind: communityId) AND \(SQLQueryString.isIn("role", Set(roles)))"
            )
            .all(decoding: Account.self, keyDecodingStrategy: .snakeCase).map(\.accountId)
        }
        let messages = Set(accounts).sorted().map {
            InboxMessage(
                id: newID(), communityId: communityId, accountId: $0, title: notice.title,
                body: String(notice.body.prefix(500)),
                severity: nil,
                link: "/app/notices/\(notice.id)", subjectType: "notice", subjectId: notice.id, createdAt: now)
        }
        for m in messages { try await db.insert(m) }
        try await self.enqueueOutbound(db, messages, now: now)
        let texts =
            notice.smsResidents
            ? try await self.enqueueNoticeSMS(db, notice: notice, households: households, now: now) : 0
        try await Change.record(
            db, actor: actor, communityId: communityId, type: "notice.published", subjectType: "notice",
            subjectId: notice.id,
            after: [
                "title": notice.title, "households": "\(households.count)", "vacantLeftOut": "\(vacant)",
                "accounts": "\(Set(accounts).count)",
                "sms": "\(texts)",
            ])
        return true
    }

    public func notice(id: ID) async throws -> Notice? {
        try await read { db in try await db.all(Notice.self, "SELECT * FROM notices WHERE id = \(bind: id)").first }
    }

    public func notices(communityId: ID, page: PageRequest) async throws -> Page<Notice> {
        try await read { db in
            let items = try await db.all(
                Notice.self,
                "SELECT * FROM notices WHERE community_id = \(bind: communityId) ORDER BY created_at DESC, id LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)"
            )
            let total = try await db.count(
                "SELECT COUNT(*) AS n FROM notices WHERE community_id = \(bind: communityId)")
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }

    /// Notices that reached any of these households, newest first, with that household's receipt.
    public func notices(forHouseholds households: [ID]) async throws -> [(Notice, NoticeReceipt)] {
        guard !households.isEmpty else { return [] }
        return try await read { db in
            let receipts = try await db.raw(
                "SELECT * FROM notice_receipts WHERE \(SQLQueryString.isIn("household_id", Set(households))) ORDER BY delivered_at DESC"
            )
            .all(decoding: NoticeReceipt.self, keyDecodingStrategy: .snakeCase)
            var out: [(Notice, NoticeReceipt)] = []
            for r in receipts.prefix(200) {
                if let n = try await db.all(Notice.self, "SELECT * FROM notices WHERE id = \(bind: r.noticeId)").first {
                    out.append((n, r))
                }
            }
            return out
        }
    }

    /// Someone of the household read the notice (the first read counts); the reader's inbox
    /// message about it is read too, so it does not wait there unread.
    public func markNoticeRead(_ notice: Notice, householdId: ID, by name: String, accountId: ID? = nil) async throws {
        try await write { db in
            let now = nowMillis()
            try await db.raw(
                """
                UPDATE notice_receipts SET read_at = \(bind: now), read_by = \(bind: name)
                WHERE notice_id = \(bind: notice.id) AND household_id = \(bind: householdId) AND read_at IS NULL
                """
            ).run()
            if let accountId {
                try await db.raw(
                    """
                    UPDATE notifications SET read_at = \(bind: now)
                    WHERE account_id = \(bind: accountId) AND subject_type = 'notice' AND subject_id = \(bind: notice.id) AND read_at IS NULL
                    """
                ).run()
            }
        }
    }

    /// The household's answer (a later answer replaces an earlier one); on the event log, so
    /// progress pages update live.
    public func answerNotice(_ notice: Notice, householdId: ID, answer: String, actor: Principal) async throws {
        try await write { db in
            let now = nowMillis()
            let rows = try await db.raw(
                """
                UPDATE notice_receipts SET answer = \(bind: answer), answered_at = \(bind: now), answered_by = \(bind: actor.name),
                read_at = COALESCE(read_at, \(bind: now)), read_by = COALESCE(read_by, \(bind: actor.name))
                WHERE notice_id = \(bind: notice.id) AND household_id = \(bind: householdId) RETURNING notice_id
                """
            ).all()
            guard !rows.isEmpty else { throw StoreError.notFound("notice") }
            try await Change.record(
                db, actor: actor, communityId: notice.communityId, type: "notice.answered", subjectType: "notice",
                subjectId: notice.id,
                after: ["householdId": householdId, "answer": answer])
        }
    }

    public func noticeProgress(_ notice: Notice) async throws -> NoticeProgress {
        let receipts = try await read { db in
            try await db.raw("SELECT * FROM notice_receipts WHERE notice_id = \(bind: notice.id)").all(
                decoding: NoticeReceipt.self, keyDecodingStrategy: .snakeCase)
        }
        var answers: [String: Int] = [:]
        for r in receipts { if let a = r.answer { answers[a, default: 0] += 1 } }
        struct Tally: Decodable {
            package var status: String
            package var n: Int
        }
        let tallies = try await read { db in
            try await db.raw(
                """
                SELECT status, COUNT(*) AS n FROM outbound_messages WHERE notice_id = \(bind: notice.id) GROUP BY status
                """
            ).all(decoding: Tally.self)
        }
        return NoticeProgress(
            households: receipts.count, read: receipts.filter { $0.readAt != nil }.count,
            answered: receipts.filter { $0.answer != nil }.count,
            answers: answers, outbound: Dictionary(uniqueKeysWithValues: tallies.map { ($0.status, $0.n) }))
    }

    /// Households that have not answered, with their current residents' names and phones.
    public func noticeFollowUp(_ notice: Notice) async throws -> [FollowUp] {
        try await noticeHouseholds(notice, unansweredOnly: true).map {
            FollowUp(householdId: $0.householdId, place: $0.place, read: $0.read, residents: $0.residents)
        }
    }

    /// The households reached, grouped by their answer: one list per option in the notice's order,
    /// then those that gave none (the actionable list: who to visit about "not yet").
    public func noticeAnswerLists(_ notice: Notice) async throws -> [AnswerList] {
        let all = try await noticeHouseholds(notice, unansweredOnly: false)
        var lists = notice.optionList.map { option in
            AnswerList(answer: option, households: all.filter { $0.answer == option })
        }
        // An answer no longer among the options cannot happen today, but would not be lost.
        let known = Set(notice.optionList)
        for other in Set(all.compactMap(\.answer)).subtracting(known).sorted() {
            lists.append(AnswerList(answer: other, households: all.filter { $0.answer == other }))
        }
        lists.append(AnswerList(answer: nil, households: all.filter { $0.answer == nil }))
        return lists
    }

    /// The notice's households with their receipt and current residents, in natural room order.
    func noticeHouseholds(_ notice: Notice, unansweredOnly: Bool) async throws -> [AnswerList.Household] {
        struct Row: Decodable {
            package var householdId: ID
            package var readAt: Millis?
            package var answer: String?
            package var answeredBy: String?
            package var answeredAt: Millis?
            package var buildingName: String
            package var unitName: String
            package var room: String
            package var name: String?
            package var phone: String?
            package var phoneCipher: String?
        }
        let filter: SQLQueryString = unansweredOnly ? " AND nr.answer IS NULL" : ""
        let rows = try await read { db in
            try await db.raw(
                """
                SELECT nr.household_id AS "householdId", nr.read_at AS "readAt", nr.answer AS answer, nr.answered_by AS "answeredBy",
                       nr.answered_at AS "answeredAt", b.name AS "buildingName", u.name AS "unitName", h.room AS room,
                       p.name AS name, p.phone AS phone, p.phone_cipher AS "phoneCipher"
                FROM notice_receipts nr JOIN households h ON h.id = nr.household_id JOIN buildings b ON b.id = h.building_id JOIN units u ON u.id = h.unit_id
                LEFT JOIN residencies r ON r.household_id = h.id AND r.moved_out IS NULL LEFT JOIN people p ON p.id = r.person_id
                WHERE nr.notice_id = \(bind: notice.id) AND nr.community_id = \(bind: notice.communityId)\(filter)
                ORDER BY nr.household_id, p.name
                """
            ).all(decoding: Row.self)
        }
        // Grouped by household here, put in room order below: SQL compares names as text.
        var out: [AnswerList.Household] = []
        for row in rows {
            if out.last?.householdId != row.householdId {
                out.append(
                    AnswerList.Household(
                        householdId: row.householdId, building: row.buildingName, unit: row.unitName, room: row.room,
                        place: "\(row.buildingName) \(row.unitName) \(row.room)", read: row.readAt != nil,
                        answer: row.answer, answeredBy: row.answeredBy, answeredAt: row.answeredAt, residents: []))
            }
            if let name = row.name {
                let phone = phone(cipher: row.phoneCipher, masked: row.phone ?? "")
                out[out.count - 1].residents.append(.init(name: name, phone: phone))
            }
        }
        return out.sorted {
            let (a, b) = (($0.building, $0.unit, $0.room), ($1.building, $1.unit, $1.room))
            return a == b ? $0.householdId < $1.householdId : RoomOrder.precedes(a, b)
        }
    }

    /// Notices whose answer deadline has passed: each is marked once, and when households are
    /// still silent, `notice.unanswered` goes on the log with how many (rules can start from it:
    /// tell the grid workers to call or visit).
    @discardableResult
    public func markUnansweredNotices(now: Millis = nowMillis()) async throws -> [(Notice, unanswered: Int)] {
        // Looked for every second: read first, so an idle second costs no write.
        let anyDue = try await read { db in
            try await db.count(
                "SELECT COUNT(*) AS n FROM notices WHERE answer_by <= \(bind: now) AND unanswered_at IS NULL")
        }
        guard anyDue > 0 else { return [] }
        return try await write { db in
            let due = try await db.all(
                Notice.self,
                "SELECT * FROM notices WHERE answer_by <= \(bind: now) AND unanswered_at IS NULL ORDER BY answer_by LIMIT 100"
            )
            var out: [(Notice, Int)] = []
            for notice in due {
                let silent = try await db.count(
                    "SELECT COUNT(*) AS n FROM notice_receipts WHERE notice_id = \(bind: notice.id) AND answer IS NULL")
                try await db.raw("UPDATE notices SET unanswered_at = \(bind: now) WHERE id = \(bind: notice.id)").run()
                if silent > 0 {
                    try await EventLog.append(
                        db, communityId: notice.communityId, type: "notice.unanswered", subjectType: "notice",
                        subjectId: notice.id, actor: .system,
                        payload: [
                            "title": notice.title, "unanswered": "\(silent)", "households": "\(notice.households)",
                        ])
                }
                out.append((notice, silent))
            }
            return out
        }
    }
}
