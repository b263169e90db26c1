import Foundation
import LinliCore
import LinliStorage
import SQLKit

public struct GridListing: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var name: String
    public var workerAccountId: ID?
    public var workerName: String?
    public var buildings: [Building]
}

extension Store {
    package static func organisationScope(_ scope: Scope) -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        return .any([.isIn("community_id", scope.communities), .isIn("id", scope.organisations)])
    }

    public func createOrganisation(_ organisation: Organisation, actor: Principal) async throws {
        try await write { db in
            try await db.insert(organisation)
            try await Change.record(
                db, actor: actor, communityId: organisation.communityId, type: "organisation.created",
                subjectType: "organisation", subjectId: organisation.id, after: organisation)
        }
    }

    public func organisations(communityId: ID, scope: Scope) async throws -> [Organisation] {
        try await read { db in
            try await db.all(
                Organisation.self,
                "SELECT * FROM organisations WHERE community_id = \(bind: communityId) AND \(Self.organisationScope(scope)) ORDER BY kind, name"
            )
        }
    }

    public func organisation(_ id: ID, scope: Scope) async throws -> Organisation {
        try await one(
            Organisation.self, "organisation",
            "SELECT * FROM organisations WHERE id = \(bind: id) AND \(Self.organisationScope(scope))")
    }

    public func addStaff(_ member: StaffMember, actor: Principal) async throws {
        try await write { db in
            try await db.insert(member)
            try await Change.record(
                db, actor: actor, communityId: member.communityId, type: "staff.added", subjectType: "staff",
                subjectId: member.id, after: member)
        }
    }

    public func staff(organisationId: ID) async throws -> [StaffMember] {
        try await read { db in
            try await db.all(
                StaffMember.self, "SELECT * FROM staff WHERE organisation_id = \(bind: organisationId) ORDER BY name")
        }
    }

    public func createGrid(_ grid: Grid, buildingIds: [ID], actor: Principal) async throws {
        try await write { db in
            try await db.insert(grid)
            for buildingId in Set(buildingIds).sorted() {
                guard let building = try await db.find(Building.self, buildingId),
                    building.communityId == grid.communityId
                else {
                    throw StoreError.conflict(
                        field: "buildingIds", reason: "building \(buildingId) is not in this community")
                }
                try await db.raw(
                    "INSERT INTO grid_buildings (grid_id, building_id, community_id) VALUES (\(bind: grid.id), \(bind: buildingId), \(bind: grid.communityId))"
                ).run()
            }
            try await Change.record(
                db, actor: actor, communityId: grid.communityId, type: "grid.created", subjectType: "grid",
                subjectId: grid.id, after: grid)
        }
    }

    public func grids(communityId: ID, scope: Scope) async throws -> [GridListing] {
        try await read { db in
            let filter: SQLQueryString = scope.everything ? "1 = 1" : .isIn("g.community_id", scope.communities)
            struct Row: Decodable {
                package var id: ID
                package var communityId: ID
                package var name: String
                package var workerAccountId: ID?
                package var workerName: String?
            }
            let rows = try await db.raw(
                "SELECT g.id, g.community_id, g.name, g.worker_account_id, a.display_name AS worker_name FROM grids g LEFT JOIN accounts a ON a.id = g.worker_account_id WHERE g.community_id = \(bind: communityId) AND \(filter) ORDER BY g.name"
            )
            .all(decoding: Row.self, keyDecodingStrategy: .snakeCase)
            var result: [GridListing] = []
            for row in rows {
                let buildings = try await db.all(
                    Building.self,
                    "SELECT b.* FROM buildings b JOIN grid_buildings gb ON gb.building_id = b.id WHERE gb.grid_id = \(bind: row.id) ORDER BY LENGTH(b.name), b.name"
                )
                result.append(
                    GridListing(
                        id: row.id, communityId: row.communityId, name: row.name, workerAccountId: row.workerAccountId,
                        workerName: row.workerName, buildings: buildings))
            }
            return result
        }
    }
}
