import Foundation
import LinliCore
import LinliStorage

/// A code a spreadsheet may give by the code itself, by its label in Chinese or in English, or
/// by another word property offices use for it: case, spaces, hyphens and underscores aside.
public protocol SheetCode: RawRepresentable, CaseIterable, Hashable, Sendable where RawValue == String {
    /// Every way a sheet may name each code (the code and both labels among them).
    static var synonyms: [Self: [String]] { get }
}

extension SheetCode {
    public init?(label: String) {
        let key = Self.normal(label)
        guard
            let found = Self.allCases.first(where: { code in
                Self.normal(code.rawValue) == key || (Self.synonyms[code] ?? []).contains { Self.normal($0) == key }
            })
        else { return nil }
        self = found
    }

    static func normal(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            .replacingOccurrences(of: "-", with: "_").replacingOccurrences(of: " ", with: "_")
    }
}

/// The community data core: places (building → unit → household), people and their
/// residency, vehicles, organisations and their staff, grids. Rows are plain values; the same struct is
/// stored (snake_case columns) and served (camelCase JSON) unless a field is sensitive.

public struct Building: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var name: String
    public var floors: Int
    public init(id: ID = newID(), communityId: ID, name: String, floors: Int) {
        self.id = id
        self.communityId = communityId
        self.name = name
        self.floors = floors
    }
}

/// An entrance (单元) of a building.
public struct BuildingUnit: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var buildingId: ID
    public var name: String
    public init(id: ID = newID(), communityId: ID, buildingId: ID, name: String) {
        self.id = id
        self.communityId = communityId
        self.buildingId = buildingId
        self.name = name
    }
}

public enum Occupancy: String, Codable, Sendable, CaseIterable {
    case ownerOccupied = "owner_occupied"
    case rented
    case vacant

}

extension Occupancy: SheetCode {
    public static let synonyms: [Occupancy: [String]] = [
        .ownerOccupied: ["owner_occupied", "owner occupied", "自住", "业主自住"],
        .rented: ["rented", "let", "出租", "已出租", "租住"],
        .vacant: ["vacant", "empty", "空置", "闲置", "空房"],
    ]
}

public struct Household: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var buildingId: ID
    public var unitId: ID
    public var room: String
    public var floor: Int
    public var area: Double?
    public var occupancy: Occupancy
    public init(
        id: ID = newID(), communityId: ID, buildingId: ID, unitId: ID, room: String, floor: Int, area: Double?,
        occupancy: Occupancy
    ) {
        self.id = id
        self.communityId = communityId
        self.buildingId = buildingId
        self.unitId = unitId
        self.room = room
        self.floor = floor
        self.area = area
        self.occupancy = occupancy
    }
}

public enum CareTag: String, Codable, Sendable, CaseIterable {
    case elderlyAlone = "elderly_alone"
    case disabled
    case child
    case keyCare = "key_care"

    /// Stored as `,tag1,tag2,` so that `LIKE '%,tag,%'` finds a tag on both engines.
    public static func encode(_ tags: [CareTag]) -> String {
        let sorted = Set(tags).map(\.rawValue).sorted()
        return sorted.isEmpty ? "" : "," + sorted.joined(separator: ",") + ","
    }

    public static func decode(_ text: String) -> [CareTag] {
        text.split(separator: ",").compactMap { CareTag(rawValue: String($0)) }
    }
}

/// A person known to the community. The identity card number and the phone are kept only
/// encrypted (`identityCipher`, `phoneCipher`) with keyed hashes for exact look-up; the number never
/// leaves in a listing, and `phone` holds the masked phone (138****5678).
extension CareTag: SheetCode {
    public static let synonyms: [CareTag: [String]] = [
        .elderlyAlone: ["elderly_alone", "elderly living alone", "elderly alone", "独居老人", "独居"],
        .disabled: ["disabled", "person with disability", "残疾人", "残疾", "残障人士"],
        .child: ["child", "children", "儿童", "未成年人"],
        .keyCare: ["key_care", "priority care", "key care", "重点关爱", "重点关注"],
    ]
}

public struct Person: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var name: String
    /// Masked; the phone itself is in `phoneCipher`.
    public var phone: String
    public var phoneCipher: String?
    public var phoneIndex: String?
    public var identityCipher: String?
    public var identityIndex: String?
    public var identityMasked: String?
    public var careTags: String
    public var createdAt: Millis
    public init(
        id: ID = newID(), communityId: ID, name: String, phone: String, identityCipher: String? = nil,
        identityIndex: String? = nil, identityMasked: String? = nil, careTags: [CareTag] = [],
        createdAt: Millis = nowMillis()
    ) {
        self.id = id
        self.communityId = communityId
        self.name = name
        self.phone = phone
        self.identityCipher = identityCipher
        self.identityIndex = identityIndex
        self.identityMasked = identityMasked
        self.careTags = CareTag.encode(careTags)
        self.createdAt = createdAt
    }
}

public enum ResidencyRole: String, Codable, Sendable, CaseIterable {
    case owner, tenant, family, other

}

extension ResidencyRole: SheetCode {
    public static let synonyms: [ResidencyRole: [String]] = [
        .owner: ["owner", "业主", "房主", "产权人", "户主"],
        .tenant: ["tenant", "renter", "租客", "租户", "承租人"],
        .family: ["family", "family member", "家庭成员", "家属", "家人", "亲属"],
        .other: ["other", "其他", "其它"],
    ]
}

/// A person living in a household, from one day to another. Moving out closes the row instead of
/// deleting it, so the history stays. A tenant whose lease has ended is no longer current.
public struct Residency: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var personId: ID
    public var householdId: ID
    public var role: ResidencyRole
    public var leaseStart: String?
    public var leaseEnd: String?
    public var movedIn: String
    public var movedOut: String?
    public init(
        id: ID = newID(), communityId: ID, personId: ID, householdId: ID, role: ResidencyRole,
        leaseStart: String? = nil, leaseEnd: String? = nil, movedIn: String, movedOut: String? = nil
    ) {
        self.id = id
        self.communityId = communityId
        self.personId = personId
        self.householdId = householdId
        self.role = role
        self.leaseStart = leaseStart
        self.leaseEnd = leaseEnd
        self.movedIn = movedIn
        self.movedOut = movedOut
    }

    public func isCurrent(on day: String) -> Bool {
        if let movedOut, movedOut <= day { return false }
        if movedIn > day { return false }
        if role == .tenant, let leaseEnd, leaseEnd < day { return false }
        return true
    }
}

public struct Vehicle: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var plate: String
    public var householdId: ID?
    public var personId: ID?
    public var description: String
    public init(id: ID = newID(), communityId: ID, plate: String, householdId: ID?, personId: ID?, description: String)
    {
        self.id = id
        self.communityId = communityId
        self.plate = plate
        self.householdId = householdId
        self.personId = personId
        self.description = description
    }
}

public enum OrganisationKind: String, Codable, Sendable, CaseIterable {
    case propertyCompany = "property_company"
    case residentsCommittee = "residents_committee"
    case ownersCommittee = "owners_committee"
    case policeStation = "police_station"
    case urbanManagement = "urban_management"
    case environmentalBureau = "environmental_bureau"
    case merchant
}

public struct Organisation: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var name: String
    public var kind: OrganisationKind
    public var phone: String
    public init(id: ID = newID(), communityId: ID, name: String, kind: OrganisationKind, phone: String) {
        self.id = id
        self.communityId = communityId
        self.name = name
        self.kind = kind
        self.phone = phone
    }
}

public struct StaffMember: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var organisationId: ID
    public var name: String
    public var title: String
    public var phone: String
    public var accountId: ID?
    public init(
        id: ID = newID(), communityId: ID, organisationId: ID, name: String, title: String, phone: String,
        accountId: ID?
    ) {
        self.id = id
        self.communityId = communityId
        self.organisationId = organisationId
        self.name = name
        self.title = title
        self.phone = phone
        self.accountId = accountId
    }
}

/// A grid (网格): a set of buildings looked after by a grid worker.
public struct Grid: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var name: String
    public var workerAccountId: ID?
    public init(id: ID = newID(), communityId: ID, name: String, workerAccountId: ID?) {
        self.id = id
        self.communityId = communityId
        self.name = name
        self.workerAccountId = workerAccountId
    }
}
