import Foundation
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliStorage
import SQLKit

/// Devices on a community's first page: those offline, and all of them by status.
struct DevicesOverview: OverviewPart {
    func overview(community: Community, context: AppContext, services: AppServices) async throws -> (
        todos: [OverviewTodo], charts: [OverviewChart]
    ) {
        guard let caller = context.caller, caller.can(.viewDevices) else { return ([], []) }
        let byStatus = try await services.store.deviceStatusCounts(
            communityId: community.id, scope: caller.scope(for: .viewDevices))
        let t = services.pages.catalogue
        let language = context.language
        let list = "/console/c/\(community.id)/devices"
        let todos = [
            OverviewTodo(
                id: "devices-offline", label: t.text("overview.devices.offline", language),
                count: byStatus[.offline] ?? 0, link: "\(list)?status=offline")
        ]
        let bars = DeviceStatus.allCases.map { status in
            OverviewChart.Bar(
                t.label("deviceStatus", status.rawValue, language), byStatus[status] ?? 0,
                link: "\(list)?status=\(status.rawValue)")
        }
        let chart = OverviewChart(
            id: "devices-status", title: t.text("overview.devices.status", language),
            unit: t.text("overview.devices.unit", language), bars: bars)
        return (todos, [chart])
    }
}

extension Store {
    /// The community's devices within `scope`, by status.
    package func deviceStatusCounts(communityId: ID, scope: Scope) async throws -> [DeviceStatus: Int] {
        struct Row: Decodable {
            var status: String
            var n: Int
        }
        let rows = try await read { db in
            try await db.raw(
                "SELECT d.status AS status, COUNT(*) AS n FROM devices d WHERE d.community_id = \(bind: communityId) AND \(Self.deviceScope(scope, alias: "d")) GROUP BY d.status"
            ).all(decoding: Row.self)
        }
        var byStatus: [DeviceStatus: Int] = [:]
        for row in rows { if let s = DeviceStatus(rawValue: row.status) { byStatus[s, default: 0] += row.n } }
        return byStatus
    }
}
