import Foundation
import LinliCore
import LinliStorage
import SQLKit

/// A person's tie to one household, as listings show it.
public struct ResidencyListing: Codable, Sendable, Equatable {
    public var id: ID
    public var personId: ID
    public var personName: String
    public var householdId: ID
    public var householdLabel: String
    public var role: ResidencyRole
    public var leaseStart: String?
    public var leaseEnd: String?
    public var movedIn: String
    public var movedOut: String?
    public var current: Bool
}

/// A person as the API and pages show them: identity number masked, phone masked unless the caller
/// may see it whole, care tags as a list.
public struct PersonView: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var name: String
    public var phone: String
    public var identityNumber: String?
    public var careTags: [CareTag]
    public var residencies: [ResidencyListing]
}

public struct PersonInput: Sendable {
    public var name: String
    public var phone: String
    public var identityNumber: String?
    public var careTags: [CareTag]
    public init(name: String, phone: String, identityNumber: String?, careTags: [CareTag]) {
        self.name = name
        self.phone = phone
        self.identityNumber = identityNumber
        self.careTags = careTags
    }
}

public struct PeopleFilter: Sendable {
    public var query: String?
    public var careTag: CareTag?
    public var currentOnly: Bool
    public var householdId: ID?
    public init(query: String? = nil, careTag: CareTag? = nil, currentOnly: Bool = false, householdId: ID? = nil) {
        self.query = query
        self.careTag = careTag
        self.currentOnly = currentOnly
        self.householdId = householdId
    }
}

public struct VehicleListing: Codable, Sendable, Equatable {
    public var id: ID
    public var communityId: ID
    public var plate: String
    public var description: String
    public var householdId: ID?
    public var householdLabel: String?
    public var personId: ID?
    public var personName: String?
}

extension Store {
    package static func personScope(_ scope: Scope, alias: String = "p") -> SQLQueryString {
        if scope.everything { return "1 = 1" }
        let p = alias + "."
        var parts: [SQLQueryString] = []
        if !scope.communities.isEmpty { parts.append(.isIn(p + "community_id", scope.communities)) }
        let today = Day.today()
        if !scope.buildings.isEmpty || !scope.households.isEmpty {
            var reach: [SQLQueryString] = []
            if !scope.buildings.isEmpty { reach.append(.isIn("sh.building_id", scope.buildings)) }
            if !scope.households.isEmpty { reach.append(.isIn("sh.id", scope.households)) }
            parts.append(
                """
                \(unsafeRaw: p)id IN (SELECT sr.person_id FROM residencies sr JOIN households sh ON sh.id = sr.household_id
                WHERE \(currentResidency("sr", today)) AND \(SQLQueryString.any(reach)))
                """)
        }
        return .any(parts)
    }

    /// Creates a person, encrypting the identity number. Returns the stored row.
    public func createPerson(communityId: ID, _ input: PersonInput, actor: Principal) async throws -> Person {
        let person = try makePerson(communityId: communityId, input)
        try await write { db in
            try await self.insertPerson(db, person, actor: actor)
        }
        return person
    }

    public func makePerson(communityId: ID, _ input: PersonInput) throws -> Person {
        var person = Person(communityId: communityId, name: input.name, phone: "", careTags: input.careTags)
        try seal(&person, phone: input.phone)
        if let number = input.identityNumber, !number.isEmpty {
            person.identityCipher = try cipher.encrypt(number.uppercased())
            person.identityIndex = cipher.blindIndex(number)
            person.identityMasked = IdentityNumber.masked(number.uppercased())
        }
        return person
    }

    package func insertPerson(_ db: any SQLDatabase, _ person: Person, actor: Principal) async throws {
        if let index = person.identityIndex {
            let clash = try await db.count(
                "SELECT COUNT(*) AS n FROM people WHERE community_id = \(bind: person.communityId) AND identity_index = \(bind: index)"
            )
            if clash > 0 {
                throw StoreError.conflict(
                    field: "identityNumber",
                    reason: "a person with this identity number is already registered in this community")
            }
        }
        try await db.insert(person)
        try await Change.record(
            db, actor: actor, communityId: person.communityId, type: "person.created", subjectType: "person",
            subjectId: person.id, after: Self.redacted(person))
    }

    public func updatePerson(
        _ id: ID, scope: Scope, name: String?, phone: String?, careTags: [CareTag]?, actor: Principal
    ) async throws {
        try await write { db in
            guard
                let before = try await db.all(
                    Person.self, "SELECT * FROM people p WHERE p.id = \(bind: id) AND \(Self.personScope(scope))"
                ).first
            else {
                throw StoreError.notFound("person")
            }
            var after = before
            if let name { after.name = name }
            if let phone { try self.seal(&after, phone: phone) }
            if let careTags { after.careTags = CareTag.encode(careTags) }
            try await db.update(after)
            try await Change.record(
                db, actor: actor, communityId: after.communityId, type: "person.updated", subjectType: "person",
                subjectId: id, before: Self.redacted(before), after: Self.redacted(after))
        }
    }

    /// Gives a person `phone`: encrypted, its keyed hash for look-up, and the masked form.
    package func seal(_ person: inout Person, phone: String) throws {
        let digits = phone.trimmingCharacters(in: .whitespaces)
        person.phone = PhoneNumber.masked(digits)
        person.phoneCipher = digits.isEmpty ? nil : try cipher.encrypt(digits)
        person.phoneIndex = digits.isEmpty ? nil : cipher.blindIndex("phone " + digits)
    }

    /// A person's whole phone, for those who may see it ("" when none).
    package func phone(of person: Person) -> String {
        phone(cipher: person.phoneCipher, masked: person.phone)
    }

    /// The whole phone from its stored forms: decrypted, or (a row not yet sealed) as it stands.
    package func phone(cipher sealed: String?, masked: String) -> String {
        guard let sealed else { return masked }
        return (try? cipher.decrypt(sealed)) ?? masked
    }

    /// Seals the phones an older version stored in plain text; run after the migrations. Returns
    /// how many it sealed (none once done).
    @discardableResult
    public func sealPhones() async throws -> Int {
        try await write { db in
            let plain = try await db.all(
                Person.self, "SELECT * FROM people WHERE phone_cipher IS NULL AND phone <> '' ORDER BY id")
            for var person in plain {
                try self.seal(&person, phone: person.phone)
                try await db.raw(
                    """
                    UPDATE people SET phone = \(bind: person.phone), phone_cipher = \(bind: person.phoneCipher),
                    phone_index = \(bind: person.phoneIndex) WHERE id = \(bind: person.id)
                    """
                ).run()
            }
            return plain.count
        }
    }

    /// What the event log and the audit trail keep of a person: no identity number, not even
    /// encrypted, and the phone masked.
    package static func redacted(_ person: Person) -> [String: String] {
        [
            "id": person.id, "name": person.name, "phone": person.phone,
            "careTags": person.careTags,
            "identityNumber": person.identityMasked ?? "",
        ]
    }

    /// The full identity number, for roles allowed to see it. The read itself is audited.
    public func revealIdentity(personId: ID, scope: Scope, actor: Principal) async throws -> String? {
        let person = try await read { db in
            try await db.all(
                Person.self, "SELECT * FROM people p WHERE p.id = \(bind: personId) AND \(Self.personScope(scope))"
            ).first
        }
        guard let person else { throw StoreError.notFound("person") }
        guard let cipherText = person.identityCipher else { return nil }
        let plain = try cipher.decrypt(cipherText)
        try await write { db in
            try await AuditLog.record(
                db, actor: actor, action: "person.identity.read", subjectType: "person", subjectId: personId,
                communityId: person.communityId)
        }
        return plain
    }

    public func person(_ id: ID, scope: Scope, fullPhone: Bool) async throws -> PersonView {
        let view = try await read { db -> PersonView? in
            guard
                let person = try await db.all(
                    Person.self, "SELECT * FROM people p WHERE p.id = \(bind: id) AND \(Self.personScope(scope))"
                ).first
            else { return nil }
            let residencies = try await Self.residencies(db, personIds: [person.id])
            return self.view(person, residencies: residencies, fullPhone: fullPhone)
        }
        guard let view else { throw StoreError.notFound("person") }
        return view
    }

    package func view(_ p: Person, residencies: [ResidencyListing], fullPhone: Bool) -> PersonView {
        PersonView(
            id: p.id, communityId: p.communityId, name: p.name,
            phone: fullPhone ? phone(of: p) : p.phone,
            identityNumber: p.identityMasked, careTags: CareTag.decode(p.careTags), residencies: residencies)
    }

    package static let householdLabel: SQLQueryString = "b.name || ' ' || u.name || ' ' || h.room"

    package static func residencies(_ db: any SQLDatabase, personIds: [ID] = [], householdId: ID? = nil) async throws
        -> [ResidencyListing]
    {
        let today = Day.today()
        let filter: SQLQueryString =
            householdId.map { "r.household_id = \(bind: $0)" } ?? .isIn("r.person_id", Set(personIds))
        let rows = try await db.raw(
            """
            SELECT r.id, r.person_id AS "personId", p.name AS "personName", r.household_id AS "householdId", \(householdLabel) AS "householdLabel", r.role,
                   r.lease_start AS "leaseStart", r.lease_end AS "leaseEnd", r.moved_in AS "movedIn", r.moved_out AS "movedOut",
                   CASE WHEN \(currentResidency("r", today)) THEN 1 ELSE 0 END AS "isCurrent"
            FROM residencies r JOIN people p ON p.id = r.person_id JOIN households h ON h.id = r.household_id
            JOIN buildings b ON b.id = h.building_id JOIN units u ON u.id = h.unit_id
            WHERE \(filter) ORDER BY r.moved_in DESC, r.id
            """
        ).all()
        return try rows.map { row in
            ResidencyListing(
                id: try row.value("id"), personId: try row.value("personId"), personName: try row.value("personName"),
                householdId: try row.value("householdId"), householdLabel: try row.value("householdLabel"),
                role: try row.value("role"), leaseStart: try row.value("leaseStart"),
                leaseEnd: try row.value("leaseEnd"),
                movedIn: try row.value("movedIn"), movedOut: try row.value("movedOut"),
                current: try row.value("isCurrent", as: Int.self) == 1)
        }
    }

    /// People's columns in camelCase, for listings (see `householdSelect`).
    package static let personColumns = """
        p.id, p.community_id AS "communityId", p.name, p.phone, p.phone_cipher AS "phoneCipher", p.phone_index AS "phoneIndex",
        p.identity_cipher AS "identityCipher", p.identity_index AS "identityIndex",
        p.identity_masked AS "identityMasked", p.care_tags AS "careTags", p.created_at AS "createdAt"
        """

    /// A person from a row of `personColumns`, read column by column (see `SQLRow.value`).
    package static func person(listed row: any SQLRow) throws -> Person {
        var person = Person(
            id: try row.value("id"), communityId: try row.value("communityId"), name: try row.value("name"),
            phone: try row.value("phone"), identityCipher: try row.value("identityCipher"),
            identityIndex: try row.value("identityIndex"), identityMasked: try row.value("identityMasked"),
            createdAt: try row.value("createdAt"))
        person.careTags = try row.value("careTags")
        person.phoneCipher = try row.value("phoneCipher")
        person.phoneIndex = try row.value("phoneIndex")
        return person
    }

    public static let peopleSortColumns = ["name": "p.name", "created": "p.created_at"]

    public func people(
        communityId: ID, filter: PeopleFilter, sort: ListOrder, page: PageRequest, scope: Scope, fullPhone: Bool
    ) async throws -> Page<PersonView> {
        let today = Day.today()
        var condition: SQLQueryString = "p.community_id = \(bind: communityId) AND \(Self.personScope(scope))"
        if let q = filter.query?.trimmingCharacters(in: .whitespaces), !q.isEmpty {
            let pattern = SQLQueryString.containsPattern(q)
            var alternatives: [SQLQueryString] = [
                "LOWER(p.name) LIKE \(bind: pattern) ESCAPE '\\'",
                "p.phone LIKE \(bind: pattern) ESCAPE '\\'",
                "p.id IN (SELECT v.person_id FROM vehicles v WHERE v.community_id = \(bind: communityId) AND LOWER(v.plate) LIKE \(bind: pattern) ESCAPE '\\')",
            ]
            if IdentityNumber.isValid(q) { alternatives.append("p.identity_index = \(bind: cipher.blindIndex(q))") }
            // A whole phone is found by its keyed hash; part of one matches the masked form's
            // first three and last four digits.
            if q.count >= 7, q.allSatisfy({ $0.isNumber || $0 == "+" }) {
                alternatives.append("p.phone_index = \(bind: cipher.blindIndex("phone " + q))")
            }
            condition += " AND " + SQLQueryString.any(alternatives)
        }
        if let tag = filter.careTag { condition += " AND p.care_tags LIKE \(bind: "%," + tag.rawValue + ",%")" }
        if filter.currentOnly {
            condition +=
                " AND EXISTS (SELECT 1 FROM residencies r WHERE r.person_id = p.id AND \(Self.currentResidency("r", today)))"
        }
        if let h = filter.householdId {
            condition +=
                " AND EXISTS (SELECT 1 FROM residencies r WHERE r.person_id = p.id AND r.household_id = \(bind: h))"
        }
        let whereClause = condition
        return try await read { db in
            // The total as a scalar subquery, run once (see `households`): a window count made
            // SQLite keep every match, ciphertexts and all, before sorting.
            let rows = try await db.raw(
                """
                SELECT \(unsafeRaw: Self.personColumns), (SELECT COUNT(*) FROM people p WHERE \(whereClause)) AS "totalRows"
                FROM people p WHERE \(whereClause) ORDER BY \(unsafeRaw: sort.sql) LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)
                """
            ).all()
            let people = try rows.map(Self.person(listed:))
            let total =
                if let first = rows.first { try first.value("totalRows", as: Int.self) } else {
                    try await db.count("SELECT COUNT(*) AS n FROM people p WHERE \(whereClause)")
                }
            let residencies = Dictionary(
                grouping: try await Self.residencies(db, personIds: people.map(\.id)), by: \.personId)
            let items = people.map { self.view($0, residencies: residencies[$0.id] ?? [], fullPhone: fullPhone) }
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }

    // MARK: residency

    public func moveIn(_ residency: Residency, actor: Principal) async throws {
        try await write { db in
            try await self.insertResidency(db, residency, actor: actor)
        }
    }

    package func insertResidency(_ db: any SQLDatabase, _ residency: Residency, actor: Principal) async throws {
        let open = try await db.count(
            "SELECT COUNT(*) AS n FROM residencies WHERE person_id = \(bind: residency.personId) AND household_id = \(bind: residency.householdId) AND moved_out IS NULL"
        )
        if open > 0 {
            throw StoreError.conflict(field: "personId", reason: "this person already lives in this household")
        }
        try await db.insert(residency)
        try await Change.record(
            db, actor: actor, communityId: residency.communityId, type: "residency.moved_in", subjectType: "residency",
            subjectId: residency.id, after: residency)
    }

    /// Closes a residency on `day`; the row stays as history.
    public func moveOut(residencyId: ID, on day: String, scope: Scope, actor: Principal) async throws -> Residency {
        try await write { db in
            guard
                let before = try await db.all(
                    Residency.self,
                    "SELECT r.* FROM residencies r JOIN households h ON h.id = r.household_id WHERE r.id = \(bind: residencyId) AND \(Self.householdScope(scope, alias: "h"))"
                ).first
            else {
                throw StoreError.notFound("residency")
            }
            if before.movedOut != nil {
                throw StoreError.conflict(field: "residencyId", reason: "this residency has already ended")
            }
            if day < before.movedIn {
                throw ValidationFailure("movedOut", "must not be before the moving-in day \(before.movedIn)")
            }
            var after = before
            after.movedOut = day
            try await db.update(after)
            try await Change.record(
                db, actor: actor, communityId: after.communityId, type: "residency.moved_out", subjectType: "residency",
                subjectId: after.id, before: before, after: after)
            return after
        }
    }

    public func residents(householdId: ID) async throws -> [ResidencyListing] {
        try await read { db in try await Self.residencies(db, householdId: householdId) }
    }

    // MARK: vehicles

    public func createVehicle(_ vehicle: Vehicle, actor: Principal) async throws {
        try await write { db in
            try await db.insert(vehicle)
            try await Change.record(
                db, actor: actor, communityId: vehicle.communityId, type: "vehicle.registered", subjectType: "vehicle",
                subjectId: vehicle.id, after: vehicle)
        }
    }

    public func vehicles(communityId: ID, query: String?, householdId: ID? = nil, page: PageRequest, scope: Scope)
        async throws -> Page<VehicleListing>
    {
        var condition: SQLQueryString = "v.community_id = \(bind: communityId) AND \(Self.vehicleScope(scope))"
        if let q = query?.trimmingCharacters(in: .whitespaces), !q.isEmpty {
            let pattern = SQLQueryString.containsPattern(q)
            condition +=
                " AND (LOWER(v.plate) LIKE \(bind: pattern) ESCAPE '\\' OR LOWER(p.name) LIKE \(bind: pattern) ESCAPE '\\')"
        }
        if let householdId { condition += " AND v.household_id = \(bind: householdId)" }
        let whereClause = condition
        let from: SQLQueryString = """
            FROM vehicles v LEFT JOIN people p ON p.id = v.person_id LEFT JOIN households h ON h.id = v.household_id
            LEFT JOIN buildings b ON b.id = h.building_id LEFT JOIN units u ON u.id = h.unit_id
            """
        return try await read { db in
            let total = try await db.count("SELECT COUNT(*) AS n " + from + " WHERE \(whereClause)")
            let items = try await db.raw(
                "SELECT v.id, v.community_id AS \"communityId\", v.plate, v.description, v.household_id AS \"householdId\", \(Self.householdLabel) AS \"householdLabel\", v.person_id AS \"personId\", p.name AS \"personName\" "
                    + from
                    + " WHERE \(whereClause) ORDER BY v.plate LIMIT \(literal: page.limit) OFFSET \(literal: page.offset)"
            )
            .all(decoding: VehicleListing.self)
            return Page(items: items, total: total, limit: page.limit, offset: page.offset)
        }
    }
}

extension Store {
    /// The care tags of the people living in a household now (moved-out residents do not count).
    public func careTags(householdId: ID) async throws -> Set<CareTag> {
        struct Row: Decodable { var careTags: String }
        let rows = try await read { db in
            try await db.raw(
                """
                SELECT p.care_tags AS "careTags" FROM residencies r JOIN people p ON p.id = r.person_id
                WHERE r.household_id = \(bind: householdId) AND r.moved_out IS NULL
                """
            ).all(decoding: Row.self)
        }
        return Set(rows.flatMap { CareTag.decode($0.careTags) })
    }
}
