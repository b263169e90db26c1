/// Who may do what, and where. Deny by default: a capability is granted only by a role binding, and
/// only within the binding's reach (everything, one community, a grid's buildings, one household).

public enum Role: String, Codable, Sendable, CaseIterable {
    /// City or platform administrator (G side): every community.
    case platformAdmin = "platform_admin"
    /// A department (police station, urban management, environmental bureau): sees what is
    /// transferred to its organisation, and the organisation itself.
    case departmentAgent = "department_agent"
    case communityAdmin = "community_admin"
    case propertyStaff = "property_staff"
    case gridWorker = "grid_worker"
    case guardOnDuty = "guard"
    case resident
}

public enum Capability: String, Sendable, CaseIterable {
    case viewCommunity  // communities, buildings, units, households, overview counts
    case manageCommunity  // create or change buildings, units, households
    case createCommunity  // add a new community (platform only)
    case viewPeople
    case managePeople  // people, residency, care tags
    case revealIdentity  // full identity card number (audited)
    case seeFullPhone
    case viewVehicles
    case manageVehicles
    case viewOrganisations
    case manageOrganisations  // organisations, staff, grids
    case importData
    case exportData
    case manageAccounts  // accounts and role bindings
    case viewAudit
    case viewEvents
    case operateDevices  // set device properties, call device services, set desired values
    case viewDevices  // products, devices, shadow, telemetry, diagnosis
    case manageDevices  // define products, register, place, disable devices
    case viewAlarms  // alarms and the rules that raise them
    case handleAlarms  // acknowledge, clear and comment on alarms
    case manageRules  // create, change, enable and delete rules
    case viewWorkOrders  // work orders within reach (a department: those transferred to it)
    case handleWorkOrders  // accept, assign, resolve, transfer … work orders; category settings
    case reportProblems  // submit a work order (residents see and rate their own)
    case publishNotices  // send notices, follow their receipts, see who has not answered (with phones)
}

extension Role {
    public var capabilities: Set<Capability> {
        switch self {
        case .platformAdmin:
            return Set(Capability.allCases)
        case .communityAdmin:
            return Set(Capability.allCases).subtracting([.createCommunity])
        case .propertyStaff:
            return [
                .viewCommunity, .manageCommunity, .viewPeople, .managePeople, .seeFullPhone, .viewVehicles,
                .manageVehicles, .viewOrganisations, .importData, .exportData, .viewEvents, .operateDevices,
                .viewDevices, .manageDevices,
                .viewAlarms, .handleAlarms, .manageRules, .viewWorkOrders, .handleWorkOrders, .reportProblems,
                .publishNotices,
            ]
        case .gridWorker:
            return [
                .viewCommunity, .viewPeople, .seeFullPhone, .viewVehicles, .viewOrganisations, .viewDevices,
                .viewAlarms, .handleAlarms,
                .viewWorkOrders, .handleWorkOrders, .reportProblems,
            ]
        case .guardOnDuty:
            return [
                .viewCommunity, .viewPeople, .viewVehicles, .viewDevices, .viewAlarms, .handleAlarms, .viewWorkOrders,
                .reportProblems,
            ]
        case .departmentAgent:
            return [.viewOrganisations, .viewWorkOrders, .handleWorkOrders]
        case .resident:
            return [.viewCommunity, .viewPeople, .seeFullPhone, .viewVehicles, .reportProblems]
        }
    }
}

public struct RoleBinding: Codable, Sendable, Equatable {
    public var id: ID
    public var accountId: ID
    public var role: Role
    /// Nil only for platform administrators.
    public var communityId: ID?
    public var organisationId: ID?
    public var gridId: ID?
    public var householdId: ID?
    public var createdAt: Millis
    public init(
        id: ID = newID(), accountId: ID, role: Role, communityId: ID?, organisationId: ID? = nil, gridId: ID? = nil,
        householdId: ID? = nil, createdAt: Millis = nowMillis()
    ) {
        self.id = id
        self.accountId = accountId
        self.role = role
        self.communityId = communityId
        self.organisationId = organisationId
        self.gridId = gridId
        self.householdId = householdId
        self.createdAt = createdAt
    }
}

/// The reach of one capability for one caller: a union of places.
public struct Scope: Sendable, Equatable {
    public var everything = false
    public var communities: Set<ID> = []
    public var buildings: Set<ID> = []
    public var households: Set<ID> = []
    public var organisations: Set<ID> = []

    public init() {}
    public static let everything: Scope = {
        var s = Scope()
        s.everything = true
        return s
    }()

    public var isEmpty: Bool {
        !everything && communities.isEmpty && buildings.isEmpty && households.isEmpty && organisations.isEmpty
    }

    /// Whether the whole community is within reach (not just a grid or a household of it).
    public func coversCommunity(_ id: ID) -> Bool { everything || communities.contains(id) }
}

/// The signed-in account with its role bindings, resolved once per request.
public struct Caller: Sendable {
    public var accountId: ID
    public var username: String
    public var displayName: String
    public var bindings: [RoleBinding]
    /// Buildings of each grid the caller works, resolved at sign-in.
    public var gridBuildings: [ID: Set<ID>]
    /// The language the account chose for its pages; nil until it chooses one.
    public var language: Language?

    public init(
        accountId: ID, username: String, displayName: String, bindings: [RoleBinding],
        gridBuildings: [ID: Set<ID>] = [:], language: Language? = nil
    ) {
        self.accountId = accountId
        self.username = username
        self.displayName = displayName
        self.bindings = bindings
        self.gridBuildings = gridBuildings
        self.language = language
    }

    public var roles: Set<Role> { Set(bindings.map(\.role)) }
    public var isResidentOnly: Bool { !bindings.isEmpty && bindings.allSatisfy { $0.role == .resident } }

    public func scope(for capability: Capability) -> Scope {
        var scope = Scope()
        for binding in bindings where binding.role.capabilities.contains(capability) {
            switch binding.role {
            case .platformAdmin:
                scope.everything = true
            case .communityAdmin, .propertyStaff, .guardOnDuty:
                if let c = binding.communityId { scope.communities.insert(c) }
            case .gridWorker:
                // A grid worker knows the community's organisations and grids, but its people only in the grid.
                if capability == .viewOrganisations, let c = binding.communityId { scope.communities.insert(c) }
                if let g = binding.gridId { scope.buildings.formUnion(gridBuildings[g] ?? []) }
            case .resident:
                if let h = binding.householdId { scope.households.insert(h) }
            case .departmentAgent:
                if let o = binding.organisationId { scope.organisations.insert(o) }
            }
        }
        return scope
    }

    public func can(_ capability: Capability) -> Bool { !scope(for: capability).isEmpty }

    /// Communities the caller can reach at all, with any capability: drives the console's menu.
    public var communityIds: Set<ID> {
        Set(bindings.compactMap(\.communityId))
    }

    public var isPlatformAdmin: Bool { bindings.contains { $0.role == .platformAdmin } }
}

/// Whether an account (a person's, an integration's) may sign in.
public enum AccountStatus: String, Codable, Sendable {
    case active, disabled
}
