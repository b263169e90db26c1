import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// The staff roster dispatch works from: every member of the community's staff with the kinds of
/// work they take and when they work, on duty now or not; dispatchers set skills and shifts.
extension WebConsole {
    func registerRoster(_ router: Router<AppContext>) {
        router.get("/console/c/:cid/roster", use: rosterPage)
        router.get("/console/c/:cid/roster/:sid", use: rosterMemberPage)
        router.post("/console/c/:cid/roster/:sid", use: saveRosterMember)
    }

    struct RosterRowView {
        var id: ID
        var name: String
        var title: String
        var organisation: String
        var phone: String
        var skills: String
        var shift: String
        var onDuty: Bool
        var hasAccount: Bool
    }

    /// "周一至周五 08:30–17:30" / "Mon–Fri 08:30–17:30": runs of days joined, then the hours.
    func shiftText(_ shift: Shift, _ context: AppContext) -> String {
        var runs: [String] = []
        var day = 0
        while day < 7 {
            guard shift.works(on: day) else {
                day += 1
                continue
            }
            var last = day
            while last + 1 < 7, shift.works(on: last + 1) { last += 1 }
            let first = text("roster.day.\(day)", context)
            runs.append(
                last == day
                    ? first
                    : last == day + 1
                        ? first + text("roster.and", context) + text("roster.day.\(last)", context)
                        : text("roster.through", context, ["from": first, "to": text("roster.day.\(last)", context)]))
            day = last + 1
        }
        let days = runs.isEmpty ? text("roster.noDays", context) : runs.joined(separator: text("common.comma", context))
        let hours =
            shift.start == shift.end
            ? text("roster.allDay", context) : "\(Shift.clock(shift.start))–\(Shift.clock(shift.end))"
        return days + " " + hours
    }

    @Sendable func rosterPage(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewWorkOrders)
        let caller = try context.requireCaller()
        let now = nowMillis()
        let rows = try await store.roster(communityId: community.id).map { m in
            RosterRowView(
                id: m.staff.id, name: m.staff.name, title: m.staff.title, organisation: m.organisationName,
                phone: m.staff.phone,
                skills: m.skills.count == WorkOrderCategory.allCases.count
                    ? text("roster.everySkill", context)
                    : m.skills.map { label("workorder.category", $0.rawValue, context) }.joined(
                        separator: text("common.comma", context)),
                shift: shiftText(m.shift, context), onDuty: m.onDuty(at: now), hasAccount: m.staff.accountId != nil)
        }
        return try pages.render(
            "roster",
            [
                "frame": Frame(title: text("roster.title", context), context: context, community: community),
                "rows": rows, "hasRows": !rows.isEmpty, "onDuty": rows.filter(\.onDuty).count,
                "canEdit": caller.scope(for: .handleWorkOrders).coversCommunity(community.id),
            ] as [String: Any])
    }

    @Sendable func rosterMemberPage(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .handleWorkOrders)
        try requireCovers(try context.scope(.handleWorkOrders), community.id, .handleWorkOrders)
        guard let member = try await rosterMember(context, community) else { throw Problem.notFound("staff member") }
        return try rosterForm(context, community, member, errors: [:], status: .ok)
    }

    func rosterMember(_ context: AppContext, _ community: Community) async throws -> RosterMember? {
        let id = try context.parameters.require("sid")
        return try await store.roster(communityId: community.id).first { $0.staff.id == id }
    }

    struct Check {
        var value: String
        var label: String
        var checked: Bool
    }

    func rosterForm(
        _ context: AppContext, _ community: Community, _ member: RosterMember, errors: [String: String],
        status: HTTPResponse.Status
    ) throws -> Response {
        var object: [String: Any] = [
            "frame": Frame(title: member.staff.name, context: context, community: community),
            "m": member.staff, "organisation": member.organisationName,
            "skills": WorkOrderCategory.allCases.map {
                Check(
                    value: $0.rawValue, label: label("workorder.category", $0.rawValue, context),
                    checked: member.skills.contains($0))
            },
            "days": (0..<7).map {
                Check(value: "\($0)", label: text("roster.day.\($0)", context), checked: member.shift.works(on: $0))
            },
            "start": Shift.clock(member.shift.start), "end": Shift.clock(member.shift.end),
        ]
        // Only a field at fault has its key: an empty string would still open a section.
        for (field, error) in errors { object[field + "Error"] = error }
        return try pages.render("roster-member", object, status: status)
    }

    /// Skills are `skill.{category}` checkboxes, days `day.{0–6}` (Monday first), hours `start`
    /// and `end` as HH:MM; an end before the start is a night shift.
    @Sendable func saveRosterMember(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, _) = try await self.community(context, .handleWorkOrders)
        try requireCovers(try context.scope(.handleWorkOrders), community.id, .handleWorkOrders)
        guard var member = try await rosterMember(context, community) else { throw Problem.notFound("staff member") }
        let form = try await request.formFields(context: context)
        member.skills = WorkOrderCategory.allCases.filter { form["skill.\($0.rawValue)"] != nil }
        let days = (0..<7).filter { form["day.\($0)"] != nil }.reduce(0) { $0 | (1 << $1) }
        var errors: [String: String] = [:]
        let start = Shift.minutes(form["start"] ?? "")
        let end = Shift.minutes(form["end"] ?? "")
        if start == nil { errors["start"] = text("roster.error.time", context) }
        if end == nil { errors["end"] = text("roster.error.time", context) }
        if member.skills.isEmpty { errors["skills"] = text("roster.error.skills", context) }
        member.shift = Shift(days: days, start: start ?? member.shift.start, end: end ?? member.shift.end)
        guard errors.isEmpty, let start, let end else {
            return try rosterForm(context, community, member, errors: errors, status: .unprocessableContent)
        }
        try await store.setRoster(
            staffId: member.staff.id, communityId: community.id, skills: member.skills,
            shift: Shift(days: days, start: start, end: end), actor: context.principal)
        return .redirect(to: "/console/c/\(community.id)/roster")
    }
}
