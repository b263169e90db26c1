import Foundation
import LinliCore
import LinliStorage
import SQLKit

/// Counts shown on a community's overview.
public struct CommunityOverview: Codable, Sendable, Equatable {
    public var community: Community
    public var buildings: Int
    public var units: Int
    public var households: Int
    public var ownerOccupied: Int
    public var rented: Int
    public var vacant: Int
    public var currentResidents: Int
    public var careTagged: Int
    public var endedLeases: Int
    public var vehicles: Int
    public var organisations: Int
    public var grids: Int
}

/// A household with the names of its building and unit, as listings show it.
public struct HouseholdListing: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var buildingId: ID
    public var buildingName: String
    public var unitId: ID
    public var unitName: String
    public var room: String
    public var floor: Int
    public var area: Double?
    public var occupancy: Occupancy
    public var residents: Int
}

public struct HouseholdFilter: Sendable {
    public var buildingId: ID?
    public var unitId: ID?
    public var occupancy: Occupancy?
    public var query: String?
    public init(buildingId: ID? = nil, unitId: ID? = nil, occupancy: Occupancy? = nil, query: String? = nil) {
        self.buildingId = buildingId
        self.unitId = unitId
        self.occupancy = occupancy
        self.query = query
    }
}

extension Store {
    // MARK: scope predicates, one per table

    package static func communityScope(_ scope: Scope, memberships: Set<ID>) -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        return .isIn("id", scope.communities.union(memberships))
    }

    package static func buildingScope(_ scope: Scope, alias: String = "") -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        let p = alias.isEmpty ? "" : alias + "."
        var parts: [SQLQueryString] = []
        if !scope.communities.isEmpty { parts.append(.isIn(p + "community_id", scope.communities)) }
        if !scope.buildings.isEmpty { parts.append(.isIn(p + "id", scope.buildings)) }
        if !scope.households.isEmpty {
            parts.append(
                "\(unsafeRaw: p)id IN (SELECT building_id FROM households WHERE \(SQLQueryString.isIn("id", scope.households)))"
            )
        }
        return .any(parts)
    }

    package static func unitScope(_ scope: Scope, alias: String = "") -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        let p = alias.isEmpty ? "" : alias + "."
        var parts: [SQLQueryString] = []
        if !scope.communities.isEmpty { parts.append(.isIn(p + "community_id", scope.communities)) }
        if !scope.buildings.isEmpty { parts.append(.isIn(p + "building_id", scope.buildings)) }
        if !scope.households.isEmpty {
            parts.append(
                "\(unsafeRaw: p)id IN (SELECT unit_id FROM households WHERE \(SQLQueryString.isIn("id", scope.households)))"
            )
        }
        return .any(parts)
    }

    package static func householdScope(_ scope: Scope, alias: String = "") -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        let p = alias.isEmpty ? "" : alias + "."
        var parts: [SQLQueryString] = []
        if !scope.communities.isEmpty { parts.append(.isIn(p + "community_id", scope.communities)) }
        if !scope.buildings.isEmpty { parts.append(.isIn(p + "building_id", scope.buildings)) }
        if !scope.households.isEmpty { parts.append(.isIn(p + "id", scope.households)) }
        return .any(parts)
    }

    // MARK: communities

    public func createCommunity(_ community: Community, actor: Principal) async throws {
        try await write { db in
            try await db.insert(community)
            try await Change.record(
                db, actor: actor, communityId: community.id, type: "community.created", subjectType: "community",
                subjectId: community.id, after: community)
        }
    }

    /// Communities the caller may see: those in scope, and those it holds any role in.
    public func communities(scope: Scope, memberships: Set<ID>) async throws -> [Community] {
        try await read { db in
            try await db.all(
                Community.self,
                "SELECT * FROM communities WHERE \(Self.communityScope(scope, memberships: memberships)) ORDER BY name, id"
            )
        }
    }

    public func community(_ id: ID, scope: Scope, memberships: Set<ID>) async throws -> Community {
        try await one(
            Community.self, "community",
            "SELECT * FROM communities WHERE id = \(bind: id) AND \(Self.communityScope(scope, memberships: memberships))"
        )
    }

    public func overview(_ community: Community, scope: Scope) async throws -> CommunityOverview {
        let today = Day.today()
        let cid = community.id
        return try await read { db in
            let hs = Self.householdScope(scope, alias: "h")
            func n(_ q: SQLQueryString) async throws -> Int { try await db.count(q) }
            return CommunityOverview(
                community: community,
                buildings: try await n(
                    "SELECT COUNT(*) AS n FROM buildings WHERE community_id = \(bind: cid) AND \(Self.buildingScope(scope))"
                ),
                units: try await n(
                    "SELECT COUNT(*) AS n FROM units WHERE community_id = \(bind: cid) AND \(Self.unitScope(scope))"),
                households: try await n(
                    "SELECT COUNT(*) AS n FROM households h WHERE h.community_id = \(bind: cid) AND \(hs)"),
                ownerOccupied: try await n(
                    "SELECT COUNT(*) AS n FROM households h WHERE h.community_id = \(bind: cid) AND h.occupancy = 'owner_occupied' AND \(hs)"
                ),
                rented: try await n(
                    "SELECT COUNT(*) AS n FROM households h WHERE h.community_id = \(bind: cid) AND h.occupancy = 'rented' AND \(hs)"
                ),
                vacant: try await n(
                    "SELECT COUNT(*) AS n FROM households h WHERE h.community_id = \(bind: cid) AND h.occupancy = 'vacant' AND \(hs)"
                ),
                currentResidents: try await n(
                    "SELECT COUNT(DISTINCT r.person_id) AS n FROM residencies r JOIN households h ON h.id = r.household_id WHERE r.community_id = \(bind: cid) AND \(Self.currentResidency("r", today)) AND \(hs)"
                ),
                careTagged: try await n(
                    "SELECT COUNT(DISTINCT p.id) AS n FROM people p JOIN residencies r ON r.person_id = p.id JOIN households h ON h.id = r.household_id WHERE p.community_id = \(bind: cid) AND p.care_tags <> '' AND \(Self.currentResidency("r", today)) AND \(hs)"
                ),
                endedLeases: try await n(
                    "SELECT COUNT(*) AS n FROM residencies r JOIN households h ON h.id = r.household_id WHERE r.community_id = \(bind: cid) AND r.role = 'tenant' AND r.moved_out IS NULL AND r.lease_end IS NOT NULL AND r.lease_end < \(bind: today) AND \(hs)"
                ),
                vehicles: try await n(
                    "SELECT COUNT(*) AS n FROM vehicles v WHERE v.community_id = \(bind: cid) AND \(Self.vehicleScope(scope))"
                ),
                organisations: try await n("SELECT COUNT(*) AS n FROM organisations WHERE community_id = \(bind: cid)"),
                grids: try await n("SELECT COUNT(*) AS n FROM grids WHERE community_id = \(bind: cid)")
            )
        }
    }

    // MARK: buildings and units

    public func createBuilding(_ building: Building, actor: Principal) async throws {
        try await write { db in
            try await db.insert(building)
            try await Change.record(
                db, actor: actor, communityId: building.communityId, type: "building.created", subjectType: "building",
                subjectId: building.id, after: building)
        }
    }

    public func buildings(communityId: ID, scope: Scope) async throws -> [Building] {
        try await read { db in
            try await db.all(
                Building.self,
                "SELECT * FROM buildings WHERE community_id = \(bind: communityId) AND \(Self.buildingScope(scope)) ORDER BY LENGTH(name), name"
            )
        }
    }

    public func building(_ id: ID, scope: Scope) async throws -> Building {
        try await one(
            Building.self, "building", "SELECT * FROM buildings WHERE id = \(bind: id) AND \(Self.buildingScope(scope))"
        )
    }

    public func createUnit(_ unit: BuildingUnit, actor: Principal) async throws {
        try await write { db in
            try await db.insert(unit)
            try await Change.record(
                db, actor: actor, communityId: unit.communityId, type: "unit.created", subjectType: "unit",
                subjectId: unit.id, after: unit)
        }
    }

    public func units(buildingId: ID, scope: Scope) async throws -> [BuildingUnit] {
        try await read { db in
            try await db.all(
                BuildingUnit.self,
                "SELECT * FROM units WHERE building_id = \(bind: buildingId) AND \(Self.unitScope(scope)) ORDER BY LENGTH(name), name"
            )
        }
    }

    public func unit(_ id: ID, scope: Scope) async throws -> BuildingUnit {
        try await one(
            BuildingUnit.self, "unit", "SELECT * FROM units WHERE id = \(bind: id) AND \(Self.unitScope(scope))")
    }

    // MARK: households

    public func createHousehold(_ household: Household, actor: Principal) async throws {
        try await write { db in
            try await db.insert(household)
            try await Change.record(
                db, actor: actor, communityId: household.communityId, type: "household.created",
                subjectType: "household", subjectId: household.id, after: household)
        }
    }

    public func updateHousehold(_ household: Household, actor: Principal) async throws {
        try await write { db in
            guard let before = try await db.find(Household.self, household.id) else {
                throw StoreError.notFound("household")
            }
            try await db.update(household)
            try await Change.record(
                db, actor: actor, communityId: household.communityId, type: "household.updated",
                subjectType: "household", subjectId: household.id, before: before, after: household)
        }
    }

    public func household(_ id: ID, scope: Scope) async throws -> HouseholdListing {
        let found = try await read { db in
            try await db.raw(
                Self.householdSelect + " WHERE h.id = \(bind: id) AND \(Self.householdScope(scope, alias: "h"))"
            )
            .first(decoding: HouseholdListing.self)
        }
        guard let found else { throw StoreError.notFound("household") }
        return found
    }

    public static let householdSortColumns = [
        "room": "b.name, u.name, h.room", "floor": "h.floor", "area": "h.area", "occupancy": "h.occupancy",
    ]

    /// Columns are named in camelCase here so rows decode without per-key case conversion, which
    /// dominated the cost of a listing.
    package static var householdSelect: SQLQueryString {
        let today = Day.today()
        return """
            SELECT h.id, h.community_id AS "communityId", h.building_id AS "buildingId", b.name AS "buildingName", h.unit_id AS "unitId",
                   u.name AS "unitName", h.room, h.floor, h.area, h.occupancy,
                   (SELECT COUNT(*) FROM residencies r WHERE r.household_id = h.id AND \(currentResidency("r", today))) AS residents
            FROM households h JOIN buildings b ON b.id = h.building_id JOIN units u ON u.id = h.unit_id
            """
    }

    public func households(communityId: ID, filter: HouseholdFilter, sort: ListOrder, page: PageRequest, scope: Scope)
        async throws -> Page<HouseholdListing>
    {
        var whereClause: SQLQueryString =
            "h.community_id = \(bind: communityId) AND \(Self.householdScope(scope, alias: "h"))"
        if let b = filter.buildingId { whereClause += " AND h.building_id = \(bind: b)" }
        if let u = filter.unitId { whereClause += " AND h.unit_id = \(bind: u)" }
        if let o = filter.occupancy { whereClause += " AND h.occupancy = \(bind: o.rawValue)" }
        if let q = filter.query, !q.isEmpty {
            whereClause += " AND LOWER(h.room) LIKE \(bind: SQLQueryString.containsPattern(q)) ESCAPE '\\'"
        }
        let condition = whereClause
        let today = Day.today()
        return try await read { db in
            // One query for the page and the total, one for the page's resident counts. The total
            // is a scalar subquery, run once: a window count (COUNT(*) OVER ()) made SQLite keep
            // every matching row, all columns, before sorting, and cost more than the page itself.
            let rows = try await db.raw(
                """
                SELECT h.id, h.community_id AS "communityId", h.building_id AS "buildingId", b.name AS "buildingName", h.unit_id AS "unitId",
                       u.name AS "unitName", h.room, h.floor, h.area, h.occupancy,
                       (SELECT COUNT(*) FROM households h WHERE \(condition)) AS "totalRows"
                FROM households h JOIN buildings b ON b.id = h.building_id JOIN units u ON u.id = h.unit_id
                WHERE \(condition) ORDER BY \(unsafeRaw: sort.sql) LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)
                """
            ).all()
            // An empty page (past the end) still reports the total.
            let total =
                if let first = rows.first { try first.value("totalRows", as: Int.self) } else {
                    try await db.count("SELECT COUNT(*) AS n FROM households h WHERE \(condition)")
                }
            var items = try rows.map { row in
                HouseholdListing(
                    id: try row.value("id"), communityId: try row.value("communityId"),
                    buildingId: try row.value("buildingId"), buildingName: try row.value("buildingName"),
                    unitId: try row.value("unitId"), unitName: try row.value("unitName"), room: try row.value("room"),
                    floor: try row.value("floor"), area: try row.value("area"), occupancy: try row.value("occupancy"),
                    residents: 0)
            }
            if !items.isEmpty {
                let counts = try await db.raw(
                    """
                    SELECT r.household_id AS "householdId", COUNT(*) AS n FROM residencies r
                    WHERE \(SQLQueryString.isIn("r.household_id", Set(items.map(\.id)))) AND \(Self.currentResidency("r", today)) GROUP BY r.household_id
                    """
                ).all()
                var residents: [ID: Int] = [:]
                for c in counts { residents[try c.value("householdId", as: ID.self)] = try c.value("n", as: Int.self) }
                for i in items.indices { items[i].residents = residents[items[i].id] ?? 0 }
            }
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }

    package static func currentResidency(_ alias: String, _ today: String) -> SQLQueryString {
        let a = alias
        return
            "(\(unsafeRaw: a).moved_out IS NULL OR \(unsafeRaw: a).moved_out > \(bind: today)) AND \(unsafeRaw: a).moved_in <= \(bind: today) AND NOT (\(unsafeRaw: a).role = 'tenant' AND \(unsafeRaw: a).lease_end IS NOT NULL AND \(unsafeRaw: a).lease_end < \(bind: today))"
    }

    package static func vehicleScope(_ scope: Scope, alias: String = "v") -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        let p = alias + "."
        var parts: [SQLQueryString] = []
        if !scope.communities.isEmpty { parts.append(.isIn(p + "community_id", scope.communities)) }
        if !scope.buildings.isEmpty {
            parts.append(
                "\(unsafeRaw: p)household_id IN (SELECT id FROM households WHERE \(SQLQueryString.isIn("building_id", scope.buildings)))"
            )
        }
        if !scope.households.isEmpty { parts.append(.isIn(p + "household_id", scope.households)) }
        return .any(parts)
    }
}

/// The things of a community that writes elsewhere name by id.
public enum CommunityPart: String, Sendable {
    case buildings, units, households, people, organisations, grids

    var noun: String {
        switch self {
        case .buildings: "building"
        case .units: "unit"
        case .households: "household"
        case .people: "person"
        case .organisations: "organisation"
        case .grids: "grid"
        }
    }
}

extension Store {
    /// What is wrong with the ids a write names for `part`s of community `communityId`: one
    /// issue for each that is not one of its (another community's, or none at all), the field
    /// named with its place in the list (`audience.buildings[1]`), or `field` alone for one id.
    public func issuesOutside(
        _ communityId: ID, _ part: CommunityPart, _ ids: [ID], field: String, listed: Bool = true
    ) async throws -> [FieldIssue] {
        guard !ids.isEmpty else { return [] }
        let found = try await read { db in
            try await db.raw(
                "SELECT id FROM \(unsafeRaw: part.rawValue) WHERE community_id = \(bind: communityId) AND \(SQLQueryString.isIn("id", Set(ids)))"
            ).all().map { try $0.decode(column: "id", as: String.self) }
        }
        let ours = Set(found)
        return ids.enumerated().filter { !ours.contains($0.element) }.map { i, _ in
            FieldIssue(listed ? "\(field)[\(i)]" : field, "is not a \(part.noun) of this community")
        }
    }
}
