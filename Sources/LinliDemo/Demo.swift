import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliLinkage
import LinliMessaging
import LinliStorage
import LinliWorkOrders
import SQLKit

/// A believable demo community: 3 buildings of 2 units and 13 floors (156 households), about 350
/// residents (owners, family, tenants with some leases ended, care-tagged elderly), about 60 vehicles,
/// the organisations a community deals with, one grid with its worker, and one account per role.
/// Generated from a fixed seed, so every demo looks the same apart from its passwords.
public enum DemoCommunity {
    public struct Credential: Sendable {
        public var role: Role
        public var username: String
        public var password: String
    }

    /// A small deterministic generator (SplitMix64): the demo must not depend on the platform's RNG.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let surnames = Array(
        "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
    static let given = [
        "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞",
        "平", "刚", "桂英", "建华", "文", "华", "玉兰", "红", "志强", "建国", "子涵", "欣怡", "梓轩", "浩然", "雨桐", "宇航", "思彤", "俊杰", "诗涵",
        "一诺",
    ]

    /// Seeds into an empty database; returns nil (and changes nothing) when a community exists.
    public static func seed(
        _ store: Store, hashPassword: @Sendable (String) async throws -> String, generatePassword: () -> String
    ) async throws -> [Credential]? {
        let existing = try await store.read { db in try await db.count("SELECT COUNT(*) AS n FROM communities") }
        if existing > 0 { return nil }
        var rng = Seeded(state: 20_261_122)
        let actor = Principal(accountId: nil, name: "demo")
        let today = Day.today()
        let calendar = Calendar(identifier: .gregorian)
        func day(offset days: Int) -> String { Day.format(calendar.date(byAdding: .day, value: days, to: Date())!) }
        func name() -> String {
            String(surnames[Int.random(in: 0..<surnames.count, using: &rng)])
                + given[Int.random(in: 0..<given.count, using: &rng)]
        }
        func phone() -> String {
            "1" + ["38", "39", "58", "59", "86", "87", "35", "77"][Int.random(in: 0..<8, using: &rng)]
                + String(format: "%08d", Int.random(in: 0..<100_000_000, using: &rng))
        }
        var serial = 100
        func identity(birthYear: Int) -> String {
            serial += 1
            let month = Int.random(in: 1...12, using: &rng)
            let dayOfMonth = Int.random(in: 1...28, using: &rng)
            return IdentityNumber.withCheckDigit(
                String(format: "330106%04d%02d%02d%03d", birthYear, month, dayOfMonth, serial % 1000))
        }
        let thisYear = Int(today.prefix(4)) ?? 2026

        let community = Community(
            name: "幸福里小区", cityCode: "330100", districtCode: "330106", streetCode: "330106001",
            address: "浙江省杭州市西湖区文三路 88 号")
        var buildings: [Building] = []
        var units: [BuildingUnit] = []
        var households: [Household] = []
        var people: [Person] = []
        var residencies: [Residency] = []
        var vehicles: [Vehicle] = []
        for b in 1...3 {
            let building = Building(communityId: community.id, name: "\(b)号楼", floors: 13)
            buildings.append(building)
            for u in 1...2 {
                let unit = BuildingUnit(communityId: community.id, buildingId: building.id, name: "\(u)单元")
                units.append(unit)
                for floor in 1...13 {
                    for door in 1...2 {
                        let roll = Int.random(in: 0..<100, using: &rng)
                        let occupancy: Occupancy = roll < 70 ? .ownerOccupied : (roll < 90 ? .rented : .vacant)
                        let household = Household(
                            communityId: community.id, buildingId: building.id, unitId: unit.id,
                            room: "\(floor)0\(door)",
                            floor: floor, area: Double(Int.random(in: 60...140, using: &rng)), occupancy: occupancy)
                        households.append(household)
                        switch occupancy {
                        case .ownerOccupied:
                            let elderlyAlone = Int.random(in: 0..<100, using: &rng) < 8
                            let ownerBorn =
                                elderlyAlone
                                ? Int.random(in: 1938...1955, using: &rng) : Int.random(in: 1960...1995, using: &rng)
                            let surname = surnames[Int.random(in: 0..<surnames.count, using: &rng)]
                            var ownerTags: [CareTag] = elderlyAlone ? [.elderlyAlone] : []
                            if Int.random(in: 0..<100, using: &rng) < 3 { ownerTags.append(.disabled) }
                            let owner = try store.makePerson(
                                communityId: community.id,
                                PersonInput(
                                    name: String(surname) + given[Int.random(in: 0..<20, using: &rng)], phone: phone(),
                                    identityNumber: identity(birthYear: ownerBorn), careTags: ownerTags))
                            people.append(owner)
                            residencies.append(
                                Residency(
                                    communityId: community.id, personId: owner.id, householdId: household.id,
                                    role: .owner, movedIn: day(offset: -Int.random(in: 400...6000, using: &rng))))
                            if !elderlyAlone {
                                for _ in 0..<Int.random(in: 0...4, using: &rng) {
                                    let child = Int.random(in: 0..<100, using: &rng) < 40
                                    let born =
                                        child
                                        ? Int.random(in: thisYear - 14...thisYear - 2, using: &rng)
                                        : Int.random(in: 1950...1998, using: &rng)
                                    let member = try store.makePerson(
                                        communityId: community.id,
                                        PersonInput(
                                            name: String(surname) + given[Int.random(in: 20..<40, using: &rng)],
                                            phone: child ? "" : phone(), identityNumber: identity(birthYear: born),
                                            careTags: child ? [.child] : []))
                                    people.append(member)
                                    residencies.append(
                                        Residency(
                                            communityId: community.id, personId: member.id, householdId: household.id,
                                            role: .family,
                                            movedIn: day(offset: -Int.random(in: 100...3000, using: &rng))))
                                }
                            }
                        case .rented:
                            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                                let tenant = try store.makePerson(
                                    communityId: community.id,
                                    PersonInput(
                                        name: name(), phone: phone(),
                                        identityNumber: identity(birthYear: Int.random(in: 1975...2003, using: &rng)),
                                        careTags: []))
                                people.append(tenant)
                                let start = -Int.random(in: 30...900, using: &rng)
                                // About one lease in five has run out: the tenant is no longer a current resident.
                                let end =
                                    Int.random(in: 0..<100, using: &rng) < 20
                                    ? -Int.random(in: 1...60, using: &rng) : Int.random(in: 30...500, using: &rng)
                                residencies.append(
                                    Residency(
                                        communityId: community.id, personId: tenant.id, householdId: household.id,
                                        role: .tenant,
                                        leaseStart: day(offset: start), leaseEnd: day(offset: end),
                                        movedIn: day(offset: start)))
                            }
                        case .vacant:
                            break
                        }
                        if occupancy != .vacant, Int.random(in: 0..<100, using: &rng) < 45,
                            let owner = residencies.last(where: { $0.householdId == household.id })
                        {
                            let letters = Array("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
                            let plate =
                                "浙A"
                                + String((0..<5).map { _ in letters[Int.random(in: 0..<letters.count, using: &rng)] })
                            vehicles.append(
                                Vehicle(
                                    communityId: community.id, plate: plate, householdId: household.id,
                                    personId: owner.personId,
                                    description: ["白色轿车", "黑色SUV", "银色轿车", "蓝色新能源车", "红色两厢车"][
                                        Int.random(in: 0..<5, using: &rng)]))
                        }
                    }
                }
            }
        }
        // One resident already moved out, so the history shows.
        if let index = residencies.firstIndex(where: { $0.role == .family }) {
            residencies[index].movedOut = day(offset: -20)
        }
        var seenPlates = Set<String>()
        vehicles = vehicles.filter { seenPlates.insert($0.plate).inserted }

        let organisations = [
            Organisation(communityId: community.id, name: "幸福里物业服务有限公司", kind: .propertyCompany, phone: "057188001234"),
            Organisation(
                communityId: community.id, name: "幸福里社区居民委员会", kind: .residentsCommittee, phone: "057188005678"),
            Organisation(communityId: community.id, name: "幸福里小区业主委员会", kind: .ownersCommittee, phone: "057188009999"),
            Organisation(communityId: community.id, name: "文新派出所", kind: .policeStation, phone: "057187001110"),
            Organisation(communityId: community.id, name: "西湖区城管执法中队", kind: .urbanManagement, phone: "057187012319"),
            Organisation(
                communityId: community.id, name: "西湖区生态环境分局", kind: .environmentalBureau, phone: "057187012369"),
            Organisation(communityId: community.id, name: "邻里便利店", kind: .merchant, phone: "13800001111"),
        ]
        let grid = Grid(communityId: community.id, name: "第一网格", workerAccountId: nil)

        // Accounts: one per role, with generated passwords shown once.
        let resident = residencies.first { $0.role == .owner && $0.movedOut == nil }!
        let plan: [(Role, String, String)] = [
            (.platformAdmin, "admin", "平台管理员"), (.communityAdmin, "manager", "社区管理员 周敏"),
            (.propertyStaff, "staff", "物业客服 李娜"),
            (.gridWorker, "grid", "网格员 陈刚"), (.guardOnDuty, "guard", "门岗 赵强"), (.departmentAgent, "police", "社区民警 孙磊"),
            (.resident, "resident", people.first { $0.id == resident.personId }!.name),
        ]
        var credentials: [Credential] = []
        var accounts: [Account] = []
        var bindings: [RoleBinding] = []
        var workerGrid = grid
        for (role, username, display) in plan {
            let password = generatePassword()
            let account = Account(
                username: username, displayName: display, passwordHash: try await hashPassword(password))
            accounts.append(account)
            credentials.append(Credential(role: role, username: username, password: password))
            var binding = RoleBinding(
                accountId: account.id, role: role, communityId: role == .platformAdmin ? nil : community.id)
            switch role {
            case .gridWorker:
                binding.gridId = grid.id
                workerGrid.workerAccountId = account.id
            case .departmentAgent: binding.organisationId = organisations[3].id
            case .resident: binding.householdId = resident.householdId
            default: break
            }
            bindings.append(binding)
        }
        let staff = [
            StaffMember(
                communityId: community.id, organisationId: organisations[0].id, name: "李娜", title: "客服主管",
                phone: "13900002222", accountId: accounts[2].id),
            StaffMember(
                communityId: community.id, organisationId: organisations[0].id, name: "赵强", title: "门岗保安",
                phone: "13900003333", accountId: accounts[4].id),
            StaffMember(
                communityId: community.id, organisationId: organisations[0].id, name: "钱工", title: "维修工程师",
                phone: "13900004444", accountId: nil),
            StaffMember(
                communityId: community.id, organisationId: organisations[1].id, name: "周敏", title: "居委会主任",
                phone: "13900005555", accountId: accounts[1].id),
            StaffMember(
                communityId: community.id, organisationId: organisations[1].id, name: "陈刚", title: "网格员",
                phone: "13900006666", accountId: accounts[3].id),
            StaffMember(
                communityId: community.id, organisationId: organisations[3].id, name: "孙磊", title: "社区民警",
                phone: "13900007777", accountId: accounts[5].id),
        ]

        let (b, u, h, p, r, v, o, s, a, rb) = (
            buildings, units, households, people, residencies, vehicles, organisations, staff, accounts, bindings
        )
        let g = workerGrid
        try await store.write { db in
            try await db.insert(community)
            try await Change.record(
                db, actor: actor, communityId: community.id, type: "community.created", subjectType: "community",
                subjectId: community.id, after: community)
            for x in b { try await db.insert(x) }
            for x in u { try await db.insert(x) }
            for x in h { try await db.insert(x) }
            for x in p { try await db.insert(x) }
            for x in r { try await db.insert(x) }
            for x in v { try await db.insert(x) }
            for x in o { try await db.insert(x) }
            for x in a { try await db.insert(x) }
            for x in s { try await db.insert(x) }
            for x in rb { try await db.insert(x) }
            try await db.insert(g)
            for building in b.prefix(2) {
                try await db.raw(
                    "INSERT INTO grid_buildings (grid_id, building_id, community_id) VALUES (\(bind: g.id), \(bind: building.id), \(bind: community.id))"
                ).run()
            }
            try await Change.record(
                db, actor: actor, communityId: community.id, type: "demo.seeded", subjectType: "community",
                subjectId: community.id,
                after: ["households": h.count, "people": p.count, "vehicles": v.count])
        }
        // Dispatch's roster: the service desk takes complaints and suggestions in office hours, the
        // guard security by night, the engineer (who has no account) repairs all week.
        let weekdays = 0b001_1111
        let everyDay = 0b111_1111
        for (member, skills, shift) in [
            (s[0], [WorkOrderCategory.complaint, .suggestion, .noise, .other], Shift.officeHours),
            (s[1], [.security, .noise], Shift(days: everyDay, start: 20 * 60, end: 8 * 60)),
            (
                s[2], [.repair, .sanitation, .environment],
                Shift(days: weekdays | 0b010_0000, start: 8 * 60, end: 18 * 60)
            ),
        ] {
            try await store.setRoster(
                staffId: member.id, communityId: community.id, skills: skills, shift: shift, actor: actor)
        }
        return credentials
    }
}
