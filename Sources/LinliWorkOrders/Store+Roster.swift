import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

/// When a member of staff works, by Beijing time: on which weekdays and between which minutes of
/// the day. A shift that ends before it starts runs past midnight (a night guard's 20:00–08:00),
/// and belongs to the day it starts on.
public struct Shift: Sendable, Equatable, Codable {
    /// Bit 0 is Monday … bit 6 Sunday.
    public var days: Int
    /// Minutes after midnight.
    public var start: Int
    public var end: Int

    public init(days: Int, start: Int, end: Int) {
        self.days = days
        self.start = start
        self.end = end
    }

    /// Monday to Friday, 08:30–17:30: what a new member of the roster gets until someone says otherwise.
    public static let officeHours = Shift(days: 0b001_1111, start: 8 * 60 + 30, end: 17 * 60 + 30)

    public func works(on weekday: Int) -> Bool { (0..<7).contains(weekday) && days & (1 << weekday) != 0 }

    /// Whether `at` falls within the shift, in Beijing time.
    public func covers(_ at: Millis) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let date = Date(timeIntervalSince1970: Double(at) / 1000)
        let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date)
        // Calendar's weekday is 1 for Sunday; the shift's days start on Monday.
        let today = ((parts.weekday ?? 1) + 5) % 7
        let minute = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
        if start == end { return works(on: today) }
        if start < end { return works(on: today) && minute >= start && minute < end }
        // Past midnight: the evening part is today's shift, the morning part yesterday's.
        return (works(on: today) && minute >= start) || (works(on: (today + 6) % 7) && minute < end)
    }

    /// "08:30" for 510.
    public static func clock(_ minutes: Int) -> String { String(format: "%02d:%02d", minutes / 60, minutes % 60) }

    /// 510 for "08:30"; nil for anything that is not a time of day.
    public static func minutes(_ clock: String) -> Int? {
        let parts = clock.split(separator: ":")
        guard parts.count == 2, parts[0].count <= 2, parts[1].count == 2, let h = Int(parts[0]), let m = Int(parts[1]),
            (0..<24).contains(h), (0..<60).contains(m)
        else { return nil }
        return h * 60 + m
    }
}

/// A member of staff as dispatch sees them: who, what they can do (work-order categories) and when
/// they work. The staff of the community's property companies are the roster (a residents'
/// committee or a police station gets work by transfer, not by dispatch); the skills and shift are
/// what dispatch adds.
public struct RosterMember: Sendable, Equatable {
    public var staff: StaffMember
    public var organisationName: String
    public var skills: [WorkOrderCategory]
    public var shift: Shift
    /// Whether skills and shift were ever set (else the defaults: every skill, office hours).
    public var configured: Bool

    public func onDuty(at: Millis) -> Bool { shift.covers(at) }
}

/// The rows of `work_order_roster`: dispatch's part of a member of staff.
struct RosterRow: Codable, Sendable {
    var staffId: ID
    var communityId: ID
    var skills: String
    var days: Int
    var shiftStart: Int
    var shiftEnd: Int
    var updatedAt: Millis
}

extension RosterRow: Record {
    static let table = "work_order_roster"
    var id: ID { staffId }
}

extension Store {
    /// The community's staff with their skills and shifts, by organisation and name.
    public func roster(communityId: ID) async throws -> [RosterMember] {
        try await read { db in
            let organisations = try await db.all(
                Organisation.self,
                "SELECT * FROM organisations WHERE community_id = \(bind: communityId) AND kind = \(bind: OrganisationKind.propertyCompany.rawValue)"
            )
            let staff = try await db.all(
                StaffMember.self, "SELECT * FROM staff WHERE community_id = \(bind: communityId) ORDER BY name, id"
            ).filter { member in organisations.contains { $0.id == member.organisationId } }
            let rows = try await db.all(
                RosterRow.self, "SELECT * FROM work_order_roster WHERE community_id = \(bind: communityId)")
            let names = Dictionary(organisations.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
            let byStaff = Dictionary(rows.map { ($0.staffId, $0) }, uniquingKeysWith: { a, _ in a })
            return staff.map { member in
                let row = byStaff[member.id]
                return RosterMember(
                    staff: member, organisationName: names[member.organisationId] ?? "",
                    skills: row.map { Self.categories($0.skills) } ?? WorkOrderCategory.allCases,
                    shift: row.map { Shift(days: $0.days, start: $0.shiftStart, end: $0.shiftEnd) } ?? .officeHours,
                    configured: row != nil)
            }
        }
    }

    static func categories(_ list: String) -> [WorkOrderCategory] {
        let chosen = Set(list.split(separator: ",").map(String.init))
        return WorkOrderCategory.allCases.filter { chosen.contains($0.rawValue) }
    }

    /// Sets a member's skills and shift (recorded as a change of the member of staff).
    public func setRoster(
        staffId: ID, communityId: ID, skills: [WorkOrderCategory], shift: Shift, actor: Principal
    ) async throws {
        try await write { db in
            guard
                let member = try await db.all(
                    StaffMember.self,
                    "SELECT * FROM staff WHERE id = \(bind: staffId) AND community_id = \(bind: communityId)"
                ).first
            else { throw StoreError.notFound("staff member") }
            let row = RosterRow(
                staffId: member.id, communityId: communityId,
                skills: skills.map(\.rawValue).joined(separator: ","), days: shift.days, shiftStart: shift.start,
                shiftEnd: shift.end, updatedAt: nowMillis())
            try await db.raw("DELETE FROM work_order_roster WHERE staff_id = \(bind: member.id)").run()
            try await db.insert(row)
            try await Change.record(
                db, actor: actor, communityId: communityId, type: "staff.roster", subjectType: "staff",
                subjectId: member.id,
                after: [
                    "skills": row.skills, "days": String(shift.days),
                    "shift": "\(Shift.clock(shift.start))–\(Shift.clock(shift.end))",
                ])
        }
    }
}
