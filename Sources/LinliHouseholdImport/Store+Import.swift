import Foundation
import LinliCommunity
import LinliCore
import LinliStorage
import SQLKit

/// Households and residents from the spreadsheet a property office keeps: one row per resident
/// (a row without a name registers the household alone). Headers may be English or Chinese.
public enum HouseholdSheet {
    public enum Column: String, CaseIterable, Sendable {
        case building, unit, room, floor, area, occupancy, name, phone
        case identityNumber = "identity_number"
        case role
        case leaseStart = "lease_start"
        case leaseEnd = "lease_end"
        case careTags = "care_tags"
        case movedIn = "moved_in"

        public var chinese: String {
            switch self {
            case .building: "楼栋"
            case .unit: "单元"
            case .room: "房号"
            case .floor: "楼层"
            case .area: "面积"
            case .occupancy: "居住状态"
            case .name: "姓名"
            case .phone: "手机"
            case .identityNumber: "身份证号"
            case .role: "身份"
            case .leaseStart: "租期开始"
            case .leaseEnd: "租期结束"
            case .careTags: "关怀标签"
            case .movedIn: "入住日期"
            }
        }

        package init?(header: String) {
            let h = header.trimmingCharacters(in: .whitespaces).lowercased().replacingOccurrences(of: " ", with: "_")
            if let c = Column(rawValue: h) {
                self = c
                return
            }
            if let c = Column.allCases.first(where: { $0.chinese == h }) {
                self = c
                return
            }
            return nil
        }
    }

    public static let required: [Column] = [.building, .unit, .room]

    /// The template's example row, by column, in codes.
    public static let example: [Column: String] = [
        .building: "1号楼", .unit: "1单元", .room: "101", .floor: "1", .area: "89.5", .occupancy: "owner_occupied",
        .name: "张三", .phone: "13800138000", .role: "owner", .movedIn: "2024-01-01",
    ]

    /// The reasons of a row whose building or unit is not there yet (and was not to be made).
    public static let unknownBuilding = "is not a building of this community (choose to create it)"
    public static let unknownUnit = "is not a unit of this building (choose to create it)"

    /// One validated line of the sheet.
    public struct Line: Sendable {
        public var line: Int
        public var building: String
        public var unit: String
        public var room: String
        public var floor: Int
        public var area: Double?
        public var occupancy: Occupancy
        public var resident: Resident?
    }

    public struct Resident: Sendable {
        public var person: PersonInput
        public var role: ResidencyRole
        public var leaseStart: String?
        public var leaseEnd: String?
        public var movedIn: String
    }

    public struct Problem: Codable, Sendable, Equatable {
        public var line: Int
        public var field: String
        public var reason: String
    }

    public struct Parsed: Sendable {
        public var lines: [Line]
        public var problems: [Problem]
        public var rowCount: Int
    }

    public static func parse(_ text: String, maxRows: Int = 50_000) -> Parsed {
        let rows: [CSV.Row]
        do {
            rows = try CSV.parse(text)
        } catch {
            if case let .unterminatedQuote(line) = error {
                return Parsed(
                    lines: [], problems: [Problem(line: line, field: "file", reason: "a quoted field is never closed")],
                    rowCount: 0)
            }
            return Parsed(lines: [], problems: [], rowCount: 0)
        }
        guard let header = rows.first else {
            return Parsed(
                lines: [], problems: [Problem(line: 1, field: "file", reason: "is empty; expected a header row")],
                rowCount: 0)
        }
        var index: [Column: Int] = [:]
        var problems: [Problem] = []
        for (i, title) in header.fields.enumerated() {
            guard let column = Column(header: title) else {
                if !title.trimmingCharacters(in: .whitespaces).isEmpty {
                    problems.append(
                        Problem(
                            line: header.line, field: title,
                            reason:
                                "is not a known column (known: \(Column.allCases.map(\.rawValue).joined(separator: ", ")))"
                        ))
                }
                continue
            }
            if index[column] != nil {
                problems.append(
                    Problem(line: header.line, field: column.rawValue, reason: "appears twice in the header"))
            }
            index[column] = i
        }
        for column in required where index[column] == nil {
            problems.append(
                Problem(line: header.line, field: column.rawValue, reason: "column is missing from the header"))
        }
        if !problems.isEmpty { return Parsed(lines: [], problems: problems, rowCount: rows.count - 1) }
        if rows.count - 1 > maxRows {
            return Parsed(
                lines: [],
                problems: [
                    Problem(
                        line: rows[maxRows + 1].line, field: "file", reason: "has more than \(maxRows) rows; split it")
                ], rowCount: rows.count - 1)
        }

        var lines: [Line] = []
        var seenIdentity: [String: (line: Int, name: String)] = [:]
        let today = Day.today()
        for row in rows.dropFirst() {
            func value(_ c: Column) -> String {
                guard let i = index[c], i < row.fields.count else { return "" }
                return row.fields[i].trimmingCharacters(in: .whitespacesAndNewlines)
            }
            var v = Validator()
            if row.fields.count > header.fields.count {
                v.add("row", "has \(row.fields.count) fields, the header has \(header.fields.count)")
            }
            let building = v.text(value(.building), Column.building.rawValue, max: 50) ?? ""
            let unit = v.text(value(.unit), Column.unit.rawValue, max: 50) ?? ""
            let room = v.text(value(.room), Column.room.rawValue, max: 50) ?? ""
            var floor = 0
            if !value(.floor).isEmpty {
                if let f = Int(value(.floor)), (-10...300).contains(f) {
                    floor = f
                } else {
                    v.add(Column.floor.rawValue, "must be a whole number between -10 and 300")
                }
            } else if let digits = Int(room.prefix(while: \.isNumber)), digits >= 100 {
                floor = digits / 100
            }
            var area: Double? = nil
            if !value(.area).isEmpty {
                if let a = Double(value(.area)), a > 0, a < 100_000, a.isFinite {
                    area = a
                } else {
                    v.add(Column.area.rawValue, "must be a positive number of square metres")
                }
            }
            var occupancy = Occupancy.ownerOccupied
            if !value(.occupancy).isEmpty {
                if let o = Occupancy(label: value(.occupancy)) {
                    occupancy = o
                } else {
                    v.add(Column.occupancy.rawValue, "must be owner_occupied, rented or vacant (自住, 出租, 空置)")
                }
            }
            var resident: Resident? = nil
            let name = value(.name)
            if !name.isEmpty {
                let cleanName = v.text(name, Column.name.rawValue, max: 100) ?? ""
                let phone = value(.phone)
                v.phone(phone, Column.phone.rawValue)
                // A masked number (from Linli's own export) carries no number: ignore it.
                let identity = value(.identityNumber).contains("*") ? "" : value(.identityNumber).uppercased()
                if !identity.isEmpty {
                    if !IdentityNumber.isValid(identity) {
                        v.add(Column.identityNumber.rawValue, "is not a valid 18-character identity card number")
                    } else if let first = seenIdentity[identity] {
                        // The same person in a second household (an owner of two flats) is one
                        // person; the same number under another name is a mistake.
                        if first.name != name {
                            v.add(Column.identityNumber.rawValue, "repeats the person on line \(first.line)")
                        }
                    } else {
                        seenIdentity[identity] = (row.line, name)
                    }
                }
                var role = ResidencyRole.owner
                if !value(.role).isEmpty {
                    if let r = ResidencyRole(label: value(.role)) {
                        role = r
                    } else {
                        v.add(Column.role.rawValue, "must be owner, tenant, family or other (业主, 租客, 家庭成员, 其他)")
                    }
                }
                let leaseStart = value(.leaseStart).isEmpty ? nil : value(.leaseStart)
                let leaseEnd = value(.leaseEnd).isEmpty ? nil : value(.leaseEnd)
                v.day(leaseStart, Column.leaseStart.rawValue)
                v.day(leaseEnd, Column.leaseEnd.rawValue)
                if let s = leaseStart, let e = leaseEnd, Day.isValid(s), Day.isValid(e), e < s {
                    v.add(Column.leaseEnd.rawValue, "is before the lease start")
                }
                if role != .tenant, leaseEnd != nil { v.add(Column.leaseEnd.rawValue, "applies to tenants only") }
                var tags: [CareTag] = []
                for label in value(.careTags).split(whereSeparator: { ";|、；".contains($0) }) {
                    if let tag = CareTag(label: String(label)) {
                        tags.append(tag)
                    } else {
                        v.add(
                            Column.careTags.rawValue,
                            "has unknown tag '\(label)' (known: \(CareTag.allCases.map(\.rawValue).joined(separator: ", ")))"
                        )
                    }
                }
                let movedIn = value(.movedIn).isEmpty ? (leaseStart ?? today) : value(.movedIn)
                v.day(movedIn, Column.movedIn.rawValue)
                resident = Resident(
                    person: PersonInput(
                        name: cleanName, phone: phone, identityNumber: identity.isEmpty ? nil : identity, careTags: tags
                    ),
                    role: role, leaseStart: leaseStart, leaseEnd: leaseEnd, movedIn: movedIn)
            } else if !value(.phone).isEmpty || !value(.identityNumber).isEmpty {
                v.add(Column.name.rawValue, "is required when a phone or identity number is given")
            }
            if v.issues.isEmpty {
                lines.append(
                    Line(
                        line: row.line, building: building, unit: unit, room: room, floor: floor, area: area,
                        occupancy: occupancy, resident: resident))
            } else {
                problems += v.issues.map { Problem(line: row.line, field: $0.field, reason: $0.reason) }
            }
        }
        return Parsed(lines: lines, problems: problems, rowCount: rows.count - 1)
    }
}

public struct ImportReport: Codable, Sendable, Equatable {
    public var rows: Int
    public var validRows: Int
    public var problems: [HouseholdSheet.Problem]
    /// False when nothing was written (problems found and partial import not chosen, or a dry run).
    public var imported: Bool
    public var buildingsCreated: Int
    public var unitsCreated: Int
    public var householdsCreated: Int
    public var peopleCreated: Int
    public var residenciesCreated: Int
}

extension Store {
    /// Validates every row first; writes nothing unless every row is good, or `onlyValid` is chosen.
    /// All writes happen in one transaction: an import is whole or absent.
    ///
    /// A building or unit the community does not have yet is made only when `createPlaces` is
    /// chosen; otherwise its rows are reported (a typo of "9号楼" for "6号楼" makes no building).
    public func importHouseholds(
        communityId: ID, csv: String, onlyValid: Bool, dryRun: Bool, createPlaces: Bool = true, actor: Principal
    )
        async throws -> ImportReport
    {
        var sheet = HouseholdSheet.parse(csv)
        if !createPlaces, !sheet.lines.isEmpty {
            try await refuseUnknownPlaces(communityId: communityId, &sheet)
        }
        let parsed = sheet
        var report = ImportReport(
            rows: parsed.rowCount, validRows: parsed.lines.count, problems: parsed.problems, imported: false,
            buildingsCreated: 0, unitsCreated: 0, householdsCreated: 0, peopleCreated: 0, residenciesCreated: 0)
        if dryRun || (!parsed.problems.isEmpty && !onlyValid) || parsed.lines.isEmpty { return report }
        // Encrypt outside the transaction: it is CPU work that need not hold the writer.
        var people: [Int: Person] = [:]
        for line in parsed.lines {
            if let r = line.resident { people[line.line] = try makePerson(communityId: communityId, r.person) }
        }
        let prepared = people
        let counts = try await write { db -> [Int] in
            var created = [0, 0, 0, 0, 0]  // buildings, units, households, people, residencies
            var buildings: [String: ID] = [:]
            for b in try await db.all(
                Building.self, "SELECT * FROM buildings WHERE community_id = \(bind: communityId)")
            { buildings[b.name] = b.id }
            var units: [String: ID] = [:]
            for u in try await db.all(
                BuildingUnit.self, "SELECT * FROM units WHERE community_id = \(bind: communityId)")
            { units[u.buildingId + "/" + u.name] = u.id }
            var households: [String: ID] = [:]
            for h in try await db.all(
                Household.self, "SELECT * FROM households WHERE community_id = \(bind: communityId)")
            { households[h.unitId + "/" + h.room] = h.id }
            for line in parsed.lines {
                let buildingId: ID
                if let known = buildings[line.building] {
                    buildingId = known
                } else {
                    let b = Building(communityId: communityId, name: line.building, floors: max(line.floor, 1))
                    try await db.insert(b)
                    try await Change.record(
                        db, actor: actor, communityId: communityId, type: "building.created", subjectType: "building",
                        subjectId: b.id, after: b)
                    buildings[line.building] = b.id
                    buildingId = b.id
                    created[0] += 1
                }
                let unitKey = buildingId + "/" + line.unit
                let unitId: ID
                if let known = units[unitKey] {
                    unitId = known
                } else {
                    let u = BuildingUnit(communityId: communityId, buildingId: buildingId, name: line.unit)
                    try await db.insert(u)
                    try await Change.record(
                        db, actor: actor, communityId: communityId, type: "unit.created", subjectType: "unit",
                        subjectId: u.id, after: u)
                    units[unitKey] = u.id
                    unitId = u.id
                    created[1] += 1
                }
                let householdKey = unitId + "/" + line.room
                let householdId: ID
                if let known = households[householdKey] {
                    householdId = known
                } else {
                    let h = Household(
                        communityId: communityId, buildingId: buildingId, unitId: unitId, room: line.room,
                        floor: line.floor, area: line.area, occupancy: line.occupancy)
                    try await db.insert(h)
                    try await Change.record(
                        db, actor: actor, communityId: communityId, type: "household.created", subjectType: "household",
                        subjectId: h.id, after: h)
                    households[householdKey] = h.id
                    householdId = h.id
                    created[2] += 1
                }
                guard let resident = line.resident, var person = prepared[line.line] else { continue }
                // The same identity number already registered: the row adds a residency to that person.
                if let index = person.identityIndex,
                    let existing = try await db.all(
                        Person.self,
                        "SELECT * FROM people WHERE community_id = \(bind: communityId) AND identity_index = \(bind: index)"
                    ).first
                {
                    person = existing
                } else {
                    try await self.insertPerson(db, person, actor: actor)
                    created[3] += 1
                }
                let open = try await db.count(
                    "SELECT COUNT(*) AS n FROM residencies WHERE person_id = \(bind: person.id) AND household_id = \(bind: householdId) AND moved_out IS NULL"
                )
                if open == 0 {
                    let r = Residency(
                        communityId: communityId, personId: person.id, householdId: householdId, role: resident.role,
                        leaseStart: resident.leaseStart, leaseEnd: resident.leaseEnd, movedIn: resident.movedIn)
                    try await self.insertResidency(db, r, actor: actor)
                    created[4] += 1
                }
            }
            try await AuditLog.record(
                db, actor: actor, action: "households.imported", subjectType: "community", subjectId: communityId,
                communityId: communityId,
                after: ["rows": parsed.rowCount, "imported": parsed.lines.count])
            return created
        }
        report.buildingsCreated = counts[0]
        report.unitsCreated = counts[1]
        report.householdsCreated = counts[2]
        report.peopleCreated = counts[3]
        report.residenciesCreated = counts[4]
        report.imported = true
        return report
    }
}

extension Store {
    /// Moves the lines whose building, or whose unit in a known building, the community does not
    /// have to the problems, each with its line.
    func refuseUnknownPlaces(communityId: ID, _ parsed: inout HouseholdSheet.Parsed) async throws {
        let (buildings, units) = try await read { db in
            (
                try await db.all(Building.self, "SELECT * FROM buildings WHERE community_id = \(bind: communityId)"),
                try await db.all(BuildingUnit.self, "SELECT * FROM units WHERE community_id = \(bind: communityId)")
            )
        }
        let byName = Dictionary(buildings.map { ($0.name, $0.id) }, uniquingKeysWith: { a, _ in a })
        let unitKeys = Set(units.map { $0.buildingId + "/" + $0.name })
        var kept: [HouseholdSheet.Line] = []
        for line in parsed.lines {
            guard let building = byName[line.building] else {
                parsed.problems.append(
                    HouseholdSheet.Problem(
                        line: line.line, field: HouseholdSheet.Column.building.rawValue,
                        reason: HouseholdSheet.unknownBuilding))
                continue
            }
            guard unitKeys.contains(building + "/" + line.unit) else {
                parsed.problems.append(
                    HouseholdSheet.Problem(
                        line: line.line, field: HouseholdSheet.Column.unit.rawValue, reason: HouseholdSheet.unknownUnit)
                )
                continue
            }
            kept.append(line)
        }
        parsed.lines = kept
        parsed.problems.sort { $0.line < $1.line }
    }

    /// The current households and residents in the import's own shape, so an export re-imports cleanly.
    /// Identity numbers leave masked unless `fullIdentity` is asked for (by a caller who may reveal
    /// them; the route checks): then they leave whole, and the read is on the audit log.
    public func exportHouseholds(
        communityId: ID, scope: Scope, fullIdentity: Bool = false, actor: Principal? = nil
    ) async throws -> String {
        let today = Day.today()
        struct Row: Decodable {
            package var building: String, unit: String, room: String, floor: Int, area: Double?, occupancy: String
            package var name: String?, phone: String?, phoneCipher: String?, identityMasked: String?,
                identityCipher: String?,
                role: String?,
                leaseStart: String?, leaseEnd: String?, careTags: String?, movedIn: String?
        }
        let rows = try await read { db in
            try await db.raw(
                """
                SELECT b.name AS building, u.name AS unit, h.room, h.floor, h.area, h.occupancy, p.name, p.phone, p.phone_cipher, p.identity_masked,
                       p.identity_cipher,
                       r.role, r.lease_start, r.lease_end, p.care_tags, r.moved_in
                FROM households h JOIN buildings b ON b.id = h.building_id JOIN units u ON u.id = h.unit_id
                LEFT JOIN residencies r ON r.household_id = h.id AND \(Self.currentResidency("r", today))
                LEFT JOIN people p ON p.id = r.person_id
                WHERE h.community_id = \(bind: communityId) AND \(Self.householdScope(scope, alias: "h"))
                ORDER BY LENGTH(b.name), b.name, LENGTH(u.name), u.name, LENGTH(h.room), h.room, r.role, p.name
                """
            ).all(decoding: Row.self, keyDecodingStrategy: .snakeCase)
        }
        var out = [HouseholdSheet.Column.allCases.map(\.rawValue)]
        var revealed = Set<String>()
        for r in rows {
            var identity = r.identityMasked ?? ""
            if fullIdentity, let cipherText = r.identityCipher {
                identity = try cipher.decrypt(cipherText)
                revealed.insert(identity)
            }
            let area = r.area.map { $0 == $0.rounded() ? String(Int($0)) : String($0) } ?? ""
            let tags = CareTag.decode(r.careTags ?? "").map(\.rawValue).joined(separator: ";")
            out.append([
                // Whole phones: the sheet goes back in through the import.
                r.building, r.unit, r.room, String(r.floor), area, r.occupancy, r.name ?? "",
                phone(cipher: r.phoneCipher, masked: r.phone ?? ""),
                identity, r.role ?? "", r.leaseStart ?? "", r.leaseEnd ?? "", tags, r.movedIn ?? "",
            ])
        }
        let revealedCount = revealed.count
        if fullIdentity, let actor {
            // A sensitive read, like the person page's reveal: who took how many whole numbers.
            try await write { db in
                try await AuditLog.record(
                    db, actor: actor, action: "households.exported.identity", subjectType: "community",
                    subjectId: communityId, communityId: communityId, after: ["identityNumbers": revealedCount])
            }
        }
        return CSV.write(out)
    }
}
