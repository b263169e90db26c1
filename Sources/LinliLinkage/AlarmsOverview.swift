import Foundation
import LinliCore
import LinliHTTP
import LinliStorage
import SQLKit

/// Alarms on a community's first page: those nobody has acknowledged (the critical ones apart),
/// and how many were raised on each of the last seven days.
struct AlarmsOverview: OverviewPart {
    static let days = 7

    func overview(community: Community, context: AppContext, services: AppServices) async throws -> (
        todos: [OverviewTodo], charts: [OverviewChart]
    ) {
        guard let caller = context.caller, caller.can(.viewAlarms) else { return ([], []) }
        let counts = try await services.store.alarmOverview(
            communityId: community.id, scope: caller.scope(for: .viewAlarms), days: Self.days)
        let t = services.pages.catalogue
        let language = context.language
        let board = "/console/c/\(community.id)/alarms"
        let todos = [
            OverviewTodo(
                id: "alarms-critical", label: t.text("overview.alarms.critical", language), count: counts.critical,
                link: "\(board)?status=active_unacknowledged&severity=critical", urgent: true),
            OverviewTodo(
                id: "alarms-unacknowledged", label: t.text("overview.alarms.unacknowledged", language),
                count: counts.unacknowledged, link: "\(board)?status=active_unacknowledged", urgent: true),
        ]
        let bars = counts.perDay.map { day, n in
            OverviewChart.Bar(t.text("overview.alarms.day", language, ["month": day.month, "day": day.day]), n)
        }
        let chart = OverviewChart(
            id: "alarms-per-day", title: t.text("overview.alarms.perDay", language),
            unit: t.text("overview.alarms.unit", language), bars: bars)
        return (todos, [chart])
    }
}

extension Store {
    /// Active alarms nobody acknowledged (and the critical ones among them), and the alarms first
    /// raised on each of the last `days` days in Beijing time, oldest first; within `scope`.
    package func alarmOverview(communityId: ID, scope: Scope, days: Int, now: Date = Date()) async throws -> (
        unacknowledged: Int, critical: Int, perDay: [(day: (month: String, day: String), count: Int)]
    ) {
        let calendar = Calendar.community
        let today = calendar.startOfDay(for: now)
        let first = calendar.date(byAdding: .day, value: -(days - 1), to: today)!
        let since = Millis(first.timeIntervalSince1970 * 1000)
        let within: SQLQueryString = "a.community_id = \(bind: communityId) AND \(Self.alarmScope(scope, alias: "a"))"
        struct Day: Decodable {
            var day: Int
            var n: Int
        }
        let (open, critical, raised) = try await read { db in
            let open = try await db.count(
                "SELECT COUNT(*) AS n FROM alarms a WHERE \(within) AND a.cleared_at IS NULL AND a.acknowledged_at IS NULL"
            )
            let critical = try await db.count(
                "SELECT COUNT(*) AS n FROM alarms a WHERE \(within) AND a.cleared_at IS NULL AND a.acknowledged_at IS NULL AND a.severity = 'critical'"
            )
            // Days counted from the epoch in UTC+8: the same integer arithmetic on both engines.
            let raised = try await db.raw(
                "SELECT (a.first_at + 28800000) / 86400000 AS day, COUNT(*) AS n FROM alarms a WHERE \(within) AND a.first_at >= \(bind: since) GROUP BY (a.first_at + 28800000) / 86400000"
            ).all(decoding: Day.self)
            return (open, critical, raised)
        }
        let byDay = Dictionary(raised.map { ($0.day, $0.n) }, uniquingKeysWith: +)
        let firstDay = Int((since + 28_800_000) / 86_400_000)
        let perDay = (0..<days).map { i -> (day: (month: String, day: String), count: Int) in
            let date = calendar.date(byAdding: .day, value: i, to: first)!
            let parts = calendar.dateComponents([.month, .day], from: date)
            return ((String(parts.month ?? 0), String(parts.day ?? 0)), byDay[firstDay + i] ?? 0)
        }
        return (open, critical, perDay)
    }
}
