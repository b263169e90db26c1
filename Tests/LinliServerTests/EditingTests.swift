import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliServer
@testable import LinliStorage

/// The console's forms for the data core: buildings, units, households, residents and their
/// moving out, people, vehicles. Each form is posted as a browser posts it, with the session's
/// cookie and CSRF token; a refusal names the field at fault beside it and keeps what was typed.
@Suite("Editing the data core in the console")
struct EditingTests {
    struct Answer {
        var status: HTTPResponse.Status
        var location: String
        var text: String

        /// The form's message beside `field`, tied to it for screen readers.
        func refuses(_ field: String) -> Bool {
            status == .unprocessableContent && text.contains("id=\"error-\(field)\"")
                && text.contains("aria-describedby=\"error-\(field)\"")
        }
    }

    typealias Session = (cookie: String, csrf: String, location: String)

    static func encode(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
            .joined(separator: "&")
    }

    static func post(
        _ client: any TestClientProtocol, _ session: Session, _ path: String, _ fields: [(String, String)],
        csrf: Bool = true
    ) async throws -> Answer {
        let body = encode(fields + (csrf ? [("_csrf", session.csrf)] : []))
        return try await client.execute(
            uri: path, method: .post,
            headers: [
                .cookie: session.cookie, .contentType: "application/x-www-form-urlencoded",
                .acceptLanguage: "zh-CN",
            ], body: ByteBuffer(string: body)
        ) { Answer(status: $0.status, location: $0.headers[.location] ?? "", text: $0.text) }
    }

    static func get(_ client: any TestClientProtocol, _ session: Session, _ path: String, english: Bool = false)
        async throws -> Answer
    {
        try await client.execute(
            uri: path, method: .get,
            headers: [.cookie: session.cookie, .acceptLanguage: english ? "en-US" : "zh-CN"]
        ) { Answer(status: $0.status, location: $0.headers[.location] ?? "", text: $0.text) }
    }

    static func count(_ store: Store, _ table: String, _ column: String, _ value: String) async throws -> Int {
        try await store.read { db in
            try await db.count(
                "SELECT COUNT(*) AS n FROM \(unsafeRaw: table) WHERE \(unsafeRaw: column) = \(bind: value)")
        }
    }

    /// Both the event and the audit line of a change.
    static func recorded(_ store: Store, _ type: String) async throws -> Bool {
        let events = try await count(store, "events", "type", type)
        let audit = try await count(store, "audit_log", "action", type)
        return events > 0 && audit > 0
    }

    @Test func buildingsAndUnitsAreAddedAndRenamed() async throws {
        try await withApp { client, fixture in
            let staff = try await WebTests.signIn(client, "staff")
            let c = fixture.community.id
            let list = try await Self.get(client, staff, "/console/c/\(c)/buildings")
            #expect(list.text.contains("id=\"new-building\""))
            let form = try await Self.get(client, staff, "/console/c/\(c)/buildings/new")
            #expect(form.status == .ok && form.text.contains("id=\"edit-form\"") && form.text.contains("楼栋名称"))

            var answer = try await Self.post(
                client, staff, "/console/c/\(c)/buildings/new", [("name", " "), ("floors", "18")])
            #expect(answer.refuses("name") && answer.text.contains("必填"))
            #expect(answer.text.contains("value=\"18\""), "what was typed is kept")
            answer = try await Self.post(
                client, staff, "/console/c/\(c)/buildings/new", [("name", "9号楼"), ("floors", "十八")])
            #expect(answer.refuses("floors") && answer.text.contains("value=\"9号楼\""))
            answer = try await Self.post(
                client, staff, "/console/c/\(c)/buildings/new", [("name", "9号楼"), ("floors", "400")])
            #expect(answer.refuses("floors") && answer.text.contains("应在 1 到 300 之间"))
            let existing = try await fixture.store.buildings(communityId: c, scope: .everything)[0]
            answer = try await Self.post(
                client, staff, "/console/c/\(c)/buildings/new", [("name", existing.name), ("floors", "6")])
            #expect(answer.refuses("name") && answer.text.contains("已有同名楼栋"))

            answer = try await Self.post(
                client, staff, "/console/c/\(c)/buildings/new", [("name", "9号楼"), ("floors", "18")])
            #expect(answer.status == .seeOther && answer.location.hasPrefix("/console/b/"))
            let buildingPath = answer.location
            var page = try await Self.get(client, staff, buildingPath)
            #expect(page.text.contains("9号楼") && page.text.contains("id=\"new-unit\""))

            answer = try await Self.post(
                client, staff, buildingPath + "/edit", [("name", "九号楼"), ("floors", "20")])
            #expect(answer.status == .seeOther && answer.location == buildingPath)
            page = try await Self.get(client, staff, buildingPath)
            #expect(page.text.contains("九号楼"))
            #expect(try await Self.recorded(fixture.store, "building.created"))
            #expect(try await Self.recorded(fixture.store, "building.updated"))

            answer = try await Self.post(client, staff, buildingPath + "/units/new", [("name", "")])
            #expect(answer.refuses("name"))
            answer = try await Self.post(client, staff, buildingPath + "/units/new", [("name", "1单元")])
            #expect(answer.status == .seeOther && answer.location == buildingPath)
            answer = try await Self.post(client, staff, buildingPath + "/units/new", [("name", "1单元")])
            #expect(answer.refuses("name") && answer.text.contains("已有同名单元"))
            let building = buildingPath.split(separator: "/").last.map(String.init)!
            let unit = try await fixture.store.units(buildingId: building, scope: .everything)[0]
            answer = try await Self.post(client, staff, "/console/u/\(unit.id)/edit", [("name", "东单元")])
            #expect(answer.status == .seeOther)
            page = try await Self.get(client, staff, buildingPath)
            #expect(page.text.contains("东单元") && page.text.contains("href=\"/console/u/\(unit.id)/edit\""))
            #expect(try await Self.recorded(fixture.store, "unit.updated"))
        }
    }

    @Test func householdsAreAddedAndEditedWithTheirLabels() async throws {
        try await withApp { client, fixture in
            let staff = try await WebTests.signIn(client, "staff")
            let c = fixture.community.id
            let building = try await fixture.store.buildings(communityId: c, scope: .everything)[0]
            let unit = try await fixture.store.units(buildingId: building.id, scope: .everything)[0]
            let list = try await Self.get(client, staff, "/console/c/\(c)/households?unitId=\(unit.id)")
            #expect(list.text.contains("href=\"/console/c/\(c)/households/new?unitId=\(unit.id)\""))
            let form = try await Self.get(client, staff, "/console/c/\(c)/households/new?unitId=\(unit.id)")
            #expect(form.text.contains("<option value=\"\(unit.id)\" selected>"), "the unit comes chosen")
            #expect(form.text.contains(">自住<") && form.text.contains(">出租<") && form.text.contains(">空置<"))
            #expect(!form.text.contains(">owner_occupied<"), "occupancy by its label, never its code")

            // Another community's unit is not one to choose.
            let otherBuilding = Building(communityId: fixture.other.id, name: "外楼", floors: 3)
            try await fixture.store.createBuilding(otherBuilding, actor: .system)
            let otherUnit = BuildingUnit(communityId: fixture.other.id, buildingId: otherBuilding.id, name: "外单元")
            try await fixture.store.createUnit(otherUnit, actor: .system)
            let bad = try await Self.post(
                client, staff, "/console/c/\(c)/households/new",
                [("unitId", otherUnit.id), ("room", ""), ("floor", "二"), ("area", "-3"), ("occupancy", "boss")])
            for field in ["unitId", "room", "floor", "area", "occupancy"] {
                #expect(bad.refuses(field), "\(field)")
            }
            #expect(bad.text.contains("value=\"-3\""))
            let ok = try await Self.post(
                client, staff, "/console/c/\(c)/households/new",
                [("unitId", unit.id), ("room", "1808"), ("floor", "18"), ("area", "89.5㎡"), ("occupancy", "rented")])
            #expect(ok.status == .seeOther && ok.location.hasPrefix("/console/h/"))
            var page = try await Self.get(client, staff, ok.location)
            #expect(page.text.contains("1808") && page.text.contains("89.5 ㎡") && page.text.contains(">出租<"))
            let again = try await Self.post(
                client, staff, "/console/c/\(c)/households/new",
                [("unitId", unit.id), ("room", "1808"), ("floor", "18"), ("occupancy", "rented")])
            #expect(again.refuses("room"))

            let edit = try await Self.get(client, staff, ok.location + "/edit")
            #expect(edit.text.contains("value=\"89.5\"") && edit.text.contains("<option value=\"rented\" selected>"))
            var answer = try await Self.post(
                client, staff, ok.location + "/edit", [("floor", "500"), ("area", "很大"), ("occupancy", "vacant")])
            #expect(answer.refuses("floor") && answer.refuses("area"))
            answer = try await Self.post(
                client, staff, ok.location + "/edit", [("floor", "17"), ("area", "90"), ("occupancy", "vacant")])
            #expect(answer.status == .seeOther && answer.location == ok.location)
            page = try await Self.get(client, staff, ok.location)
            #expect(page.text.contains("17 层") && page.text.contains("90 ㎡") && page.text.contains(">空置<"))
            #expect(try await Self.recorded(fixture.store, "household.updated"))
        }
    }

    @Test func residentsMoveInAndOut() async throws {
        try await withApp { client, fixture in
            let staff = try await WebTests.signIn(client, "staff")
            let h = fixture.outsideHousehold
            let household = try await Self.get(client, staff, "/console/h/\(h)")
            #expect(household.text.contains("href=\"/console/h/\(h)/residents/new\""))
            let path = "/console/h/\(h)/residents/new"
            let identity = IdentityNumber.withCheckDigit("33010519850505123")
            var answer = try await Self.post(
                client, staff, path,
                [
                    ("name", ""), ("phone", "12"), ("identityNumber", "330105"), ("role", "family"),
                    ("leaseEnd", "2027-06-30"), ("movedIn", "2026-13-01"),
                ])
            for field in ["name", "phone", "identityNumber", "leaseEnd", "movedIn"] {
                #expect(answer.refuses(field), "\(field)")
            }
            #expect(answer.text.contains("value=\"330105\""))
            answer = try await Self.post(
                client, staff, path,
                [
                    ("name", "钱多多"), ("phone", "13912345678"), ("identityNumber", identity),
                    ("careTags", "elderly_alone"), ("careTags", "key_care"), ("role", "tenant"),
                    ("leaseStart", "2026-01-01"), ("leaseEnd", "2025-12-31"),
                ])
            #expect(answer.refuses("leaseEnd") && answer.text.contains("租期结束早于租期开始"))
            #expect(answer.text.contains("value=\"key_care\" checked"), "the chosen tags are kept")
            answer = try await Self.post(
                client, staff, path,
                [
                    ("name", "钱多多"), ("phone", "13912345678"), ("identityNumber", identity),
                    ("careTags", "elderly_alone"), ("role", "tenant"), ("leaseStart", "2026-01-01"),
                    ("leaseEnd", "2027-06-30"), ("movedIn", "2026-01-01"),
                ])
            #expect(answer.status == .seeOther && answer.location == "/console/h/\(h)")
            var page = try await Self.get(client, staff, "/console/h/\(h)")
            #expect(page.text.contains("钱多多") && page.text.contains("2027-06-30"))
            let person = try await fixture.store.people(
                communityId: fixture.community.id, filter: PeopleFilter(query: "钱多多"),
                sort: ListOrder(nil, allowed: [:], default: "p.id"), page: PageRequest(), scope: .everything,
                fullPhone: true
            ).items[0]
            #expect(person.identityNumber == IdentityNumber.masked(identity))
            let stored = try await fixture.store.read { db in try await db.find(Person.self, person.id) }!
            #expect(stored.identityCipher != nil && stored.identityCipher != identity, "stored encrypted")
            let personPage = try await Self.get(client, staff, "/console/p/\(person.id)")
            #expect(personPage.text.contains(IdentityNumber.masked(identity)) && !personPage.text.contains(identity))
            #expect(personPage.text.contains("独居老人"))

            // The same identity number again is refused beside it.
            answer = try await Self.post(
                client, staff, path, [("name", "钱二"), ("identityNumber", identity), ("role", "owner")])
            #expect(answer.refuses("identityNumber"))

            // Someone already registered, found by name, moves into a second household.
            let second = fixture.gridHousehold
            let search = try await Self.get(
                client, staff,
                "/console/h/\(second)/residents/new?q=\("钱多多".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)"
            )
            #expect(search.text.contains("value=\"\(person.id)\""))
            answer = try await Self.post(
                client, staff, "/console/h/\(second)/residents/new",
                [("personId", fixture.otherPerson), ("role", "owner")])
            #expect(answer.refuses("personId"), "another community's person")
            answer = try await Self.post(
                client, staff, "/console/h/\(second)/residents/new", [("personId", person.id), ("role", "family")])
            #expect(answer.status == .seeOther && answer.location == "/console/h/\(second)")
            answer = try await Self.post(
                client, staff, "/console/h/\(second)/residents/new", [("personId", person.id), ("role", "family")])
            #expect(answer.refuses("personId") && answer.text.contains("此人已经住在这户"))

            // Moving out: a page that says who and where, then the date.
            let residency = try await fixture.store.residents(householdId: h).first { $0.personId == person.id }!
            let confirm = try await Self.get(client, staff, "/console/r/\(residency.id)/move-out")
            #expect(confirm.text.contains("钱多多") && confirm.text.contains("确认迁出") && confirm.text.contains("租客"))
            answer = try await Self.post(
                client, staff, "/console/r/\(residency.id)/move-out", [("movedOut", "2025-06-01")])
            #expect(answer.refuses("movedOut") && answer.text.contains("2026-01-01"))
            answer = try await Self.post(client, staff, "/console/r/\(residency.id)/move-out", [("movedOut", "")])
            #expect(answer.refuses("movedOut"))
            let today = Day.today()
            answer = try await Self.post(
                client, staff, "/console/r/\(residency.id)/move-out", [("movedOut", today)])
            #expect(answer.status == .seeOther && answer.location == "/console/h/\(h)")
            page = try await Self.get(client, staff, "/console/h/\(h)")
            #expect(page.text.contains("class=\"resident ended\"") && page.text.contains(today))
            #expect(!page.text.contains("/console/r/\(residency.id)/move-out"), "no move-out for an ended residency")
            answer = try await Self.post(
                client, staff, "/console/r/\(residency.id)/move-out", [("movedOut", today)])
            #expect(answer.refuses("movedOut") && answer.text.contains("已经结束"))
            #expect(try await Self.recorded(fixture.store, "person.created"))
            #expect(try await Self.recorded(fixture.store, "residency.moved_in"))
            #expect(try await Self.recorded(fixture.store, "residency.moved_out"))
        }
    }

    @Test func peopleAreRegisteredAndEdited() async throws {
        try await withApp { client, fixture in
            let staff = try await WebTests.signIn(client, "staff")
            let c = fixture.community.id
            let people = try await Self.get(client, staff, "/console/c/\(c)/people")
            #expect(people.text.contains("href=\"/console/c/\(c)/people/new\""))
            var answer = try await Self.post(
                client, staff, "/console/c/\(c)/people/new", [("name", "孙小美"), ("role", "owner")])
            #expect(answer.refuses("householdId"))
            answer = try await Self.post(
                client, staff, "/console/c/\(c)/people/new",
                [
                    ("householdId", fixture.outsideHousehold), ("name", "孙小美"), ("phone", "13600001111"),
                    ("role", "owner"),
                ])
            #expect(answer.status == .seeOther && answer.location == "/console/h/\(fixture.outsideHousehold)")

            let p = fixture.personWithIdentity
            let personPage = try await Self.get(client, staff, "/console/p/\(p)")
            #expect(personPage.text.contains("href=\"/console/p/\(p)/edit\""))
            answer = try await Self.post(
                client, staff, "/console/p/\(p)/edit", [("name", "改名"), ("phone", "abc")])
            #expect(answer.refuses("phone") && answer.text.contains("value=\"abc\""))
            answer = try await Self.post(
                client, staff, "/console/p/\(p)/edit", [("name", ""), ("phone", "13800002222")])
            #expect(answer.refuses("name"))
            answer = try await Self.post(
                client, staff, "/console/p/\(p)/edit",
                [("name", "新名字"), ("phone", "13800002222"), ("careTags", "disabled")])
            #expect(answer.status == .seeOther && answer.location == "/console/p/\(p)")
            let page = try await Self.get(client, staff, "/console/p/\(p)")
            #expect(page.text.contains("新名字") && page.text.contains("13800002222") && page.text.contains("残疾人"))
            #expect(try await Self.recorded(fixture.store, "person.updated"))
        }
    }

    @Test func vehiclesAreRegisteredAndEdited() async throws {
        try await withApp { client, fixture in
            let staff = try await WebTests.signIn(client, "staff")
            let h = fixture.residentHousehold
            let resident = try await fixture.store.residents(householdId: h).first { $0.current }!
            let path = "/console/h/\(h)/vehicles/new"
            var answer = try await Self.post(
                client, staff, path, [("plate", "浙A1"), ("personId", fixture.otherPerson)])
            #expect(answer.refuses("plate") && answer.refuses("personId"))
            answer = try await Self.post(
                client, staff, path, [("plate", "浙a 9z9z9"), ("description", "白色轿车"), ("personId", resident.personId)])
            #expect(answer.status == .seeOther && answer.location == "/console/h/\(h)")
            let vehicles = try await Self.get(client, staff, "/console/c/\(fixture.community.id)/vehicles?q=9Z9Z9")
            #expect(vehicles.text.contains("浙A9Z9Z9") && vehicles.text.contains("白色轿车"))
            answer = try await Self.post(client, staff, path, [("plate", "浙A9Z9Z9")])
            #expect(answer.refuses("plate") && answer.text.contains("已登记过这个车牌"))
            let vehicle = try await fixture.store.vehicles(
                communityId: fixture.community.id, query: "9Z9Z9", page: PageRequest(), scope: .everything
            ).items[0]
            #expect(vehicle.personId == resident.personId)
            answer = try await Self.post(
                client, staff, "/console/v/\(vehicle.id)/edit", [("plate", "浙A9Z9Z9"), ("description", "黑色越野")])
            #expect(answer.status == .seeOther)
            let page = try await Self.get(client, staff, "/console/h/\(h)")
            #expect(page.text.contains("黑色越野") && page.text.contains("/console/v/\(vehicle.id)/edit"))
            #expect(try await Self.recorded(fixture.store, "vehicle.registered"))
            #expect(try await Self.recorded(fixture.store, "vehicle.updated"))
        }
    }

    /// Every form of the change, its page and its POST.
    static func forms(_ fixture: Fixture) async throws -> [String] {
        let c = fixture.community.id
        let store = fixture.store
        let building = try await store.buildings(communityId: c, scope: .everything)[0]
        let unit = try await store.units(buildingId: building.id, scope: .everything)[0]
        let residency = try await store.residents(householdId: fixture.residentHousehold).first { $0.movedOut == nil }!
        let vehicle = try await store.vehicles(
            communityId: c, query: nil, page: PageRequest(limit: 1), scope: .everything
        )
        .items[0]
        return [
            "/console/c/\(c)/buildings/new", "/console/b/\(building.id)/edit", "/console/b/\(building.id)/units/new",
            "/console/u/\(unit.id)/edit", "/console/c/\(c)/households/new",
            "/console/h/\(fixture.residentHousehold)/edit",
            "/console/h/\(fixture.residentHousehold)/residents/new", "/console/c/\(c)/people/new",
            "/console/r/\(residency.id)/move-out", "/console/p/\(residency.personId)/edit",
            "/console/h/\(fixture.residentHousehold)/vehicles/new", "/console/v/\(vehicle.id)/edit",
        ]
    }

    @Test func onlyThoseWhoManageMayEdit() async throws {
        try await withApp { client, fixture in
            let forms = try await Self.forms(fixture)
            let h = fixture.residentHousehold
            for who in ["grid", "guard", "police", "resident"] {
                let session = try await WebTests.signIn(client, who)
                if who != "police" {
                    let page = try await Self.get(
                        client, session, "/console/h/\(who == "grid" ? fixture.gridHousehold : h)")
                    for button in ["new-resident", "edit-household", "new-vehicle", "move-out"] {
                        #expect(!page.text.contains(button), "\(who) sees \(button)")
                    }
                    let people = try await Self.get(client, session, "/console/c/\(fixture.community.id)/people")
                    #expect(!people.text.contains("new-person"), "\(who)")
                }
                for path in forms {
                    let answer = try await Self.post(client, session, path, [("name", "x"), ("plate", "浙A00000")])
                    #expect(answer.status == .forbidden, "\(who) POST \(path)")
                    let page = try await Self.get(client, session, path)
                    #expect(page.status == .forbidden, "\(who) GET \(path)")
                }
            }
            // Another community's manager reaches none of this community's things.
            let other = try await WebTests.signIn(client, "other-manager")
            for path in forms {
                let answer = try await Self.post(client, other, path, [("name", "x")])
                #expect(answer.status == .notFound || answer.status == .forbidden, "other-manager POST \(path)")
            }
            // A form posted without its token is refused before it is read.
            let staff = try await WebTests.signIn(client, "staff")
            for path in forms {
                let answer = try await Self.post(client, staff, path, [("name", "x")], csrf: false)
                #expect(answer.status == .forbidden, "no CSRF: \(path)")
            }
            #expect(try await Self.count(fixture.store, "buildings", "name", "x") == 0)
        }
    }

    @Test func formsSpeakEnglishToo() async throws {
        try await withApp { client, fixture in
            let staff = try await WebTests.signIn(client, "staff")
            let form = try await Self.get(
                client, staff, "/console/c/\(fixture.community.id)/households/new", english: true)
            #expect(form.text.contains("<html lang=\"en\">") && form.text.contains(">Owner-occupied<"))
            #expect(form.text.contains("New household") && !form.text.contains("新增房屋"))
            let answer = try await client.execute(
                uri: "/console/c/\(fixture.community.id)/buildings/new", method: .post,
                headers: [
                    .cookie: staff.cookie, .contentType: "application/x-www-form-urlencoded", .acceptLanguage: "en-US",
                ], body: ByteBuffer(string: Self.encode([("name", ""), ("floors", "0"), ("_csrf", staff.csrf)]))
            ) { Answer(status: $0.status, location: "", text: $0.text) }
            #expect(answer.refuses("name") && answer.text.contains("Required."))
            #expect(answer.text.contains("Must be between 1 and 300."))
        }
    }
}
