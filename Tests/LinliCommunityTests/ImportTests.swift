import Foundation
import LinliCore
import LinliDemo
import LinliTestSupport
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliHouseholdImport
@testable import LinliStorage

@Suite("Household and resident import")
struct ImportTests {
    static let good1 = IdentityNumber.withCheckDigit("33010619700101001")
    static let good2 = IdentityNumber.withCheckDigit("33010619850505002")

    static var sheet: String {
        """
        楼栋,单元,房号,楼层,面积,居住状态,姓名,手机,身份证号,身份,租期开始,租期结束,关怀标签
        5号楼,1单元,101,1,88,自住,孙丽,13911112222,\(good1),业主,,,独居老人
        5号楼,1单元,102,1,90,出租,"周, 小杰",13911113333,\(good2),租客,2025-01-01,2027-01-01,
        5号楼,1单元,103,1,-5,空置,,,,,,,
        5号楼,2单元,201,2,70,rented,吴涛,12,123,tenant,2026-01-01,2025-01-01,vip
        5号楼,2单元,202,,,,,,,,,,
        """
    }

    @Test(arguments: TestEngine.available)
    func badRowsAreReportedWithLineNumbersAndNothingIsWritten(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let report = try await store.importHouseholds(
                communityId: place.community.id, csv: Self.sheet, onlyValid: false, dryRun: false, actor: tester)
            #expect(!report.imported)
            #expect(report.rows == 5 && report.validRows == 3)
            #expect(Set(report.problems.map(\.line)) == [4, 5])
            let line5 = report.problems.filter { $0.line == 5 }.map(\.field)
            #expect(Set(line5) == ["phone", "identity_number", "lease_end", "care_tags"])
            #expect(report.problems.first { $0.line == 4 }?.field == "area")
            let households = try await store.read { db in try await db.count("SELECT COUNT(*) AS n FROM households") }
            #expect(households == 2, "nothing written when a row is bad and partial import was not chosen")
        }
    }

    @Test(arguments: TestEngine.available)
    func validOnlyImportsTheGoodRowsInOneGo(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let report = try await store.importHouseholds(
                communityId: place.community.id, csv: Self.sheet, onlyValid: true, dryRun: false, actor: tester)
            #expect(report.imported)
            #expect(report.buildingsCreated == 1 && report.unitsCreated == 2 && report.householdsCreated == 3)
            #expect(report.peopleCreated == 2 && report.residenciesCreated == 2)
            let s = scope(community: place.community.id)
            let people = try await store.people(
                communityId: place.community.id, filter: PeopleFilter(query: "周, 小杰"),
                sort: try ListOrder(nil, allowed: [:], default: "p.id"), page: PageRequest(), scope: s, fullPhone: true)
            #expect(people.items.count == 1)
            #expect(people.items[0].residencies.first?.role == .tenant)
            #expect(people.items[0].residencies.first?.leaseEnd == "2027-01-01")
            // Importing the same sheet again adds nothing: households, people and residencies are matched.
            let again = try await store.importHouseholds(
                communityId: place.community.id, csv: Self.sheet, onlyValid: true, dryRun: false, actor: tester)
            #expect(again.householdsCreated == 0 && again.peopleCreated == 0 && again.residenciesCreated == 0)
            // The export has the import's own columns and re-imports cleanly (identity numbers leave masked).
            let csv = try await store.exportHouseholds(communityId: place.community.id, scope: s)
            #expect(csv.hasPrefix("building,unit,room,floor,area,occupancy,name,phone,identity_number"))
            #expect(!csv.contains(Self.good1) && csv.contains(IdentityNumber.masked(Self.good1)))
            let reimport = try await store.importHouseholds(
                communityId: place.community.id, csv: csv, onlyValid: false, dryRun: true, actor: tester)
            #expect(reimport.problems.isEmpty, "\(reimport.problems)")
        }
    }

    @Test func headerProblemsAndBrokenQuotesAreReported() {
        #expect(HouseholdSheet.parse("").problems.first?.reason.contains("empty") == true)
        let missing = HouseholdSheet.parse("building,unit,colour\n1,1,red\n")
        #expect(Set(missing.problems.map(\.field)) == ["colour", "room"])
        let broken = HouseholdSheet.parse("building,unit,room\n1,1,\"101\n")
        #expect(broken.problems.first?.field == "file")
    }

    @Test func csvRoundTripsQuotesCommasAndNewlines() throws {
        let rows = [["a", "b,c", "say \"hi\""], ["line\nbreak", "", "=1+1"]]
        let text = CSV.write(rows)
        let parsed = try CSV.parse(text).map(\.fields)
        #expect(parsed[0] == rows[0])
        #expect(parsed[1][0] == "line\nbreak")
        #expect(parsed[1][2] == "'=1+1", "formulas are defused for spreadsheets")
        #expect(try CSV.parse("\u{FEFF}x,y\r\n1,2\r\n").map(\.fields) == [["x", "y"], ["1", "2"]])
        #expect(try CSV.parse("a\n\"b\nc\"\nd\n").map(\.line) == [1, 2, 4])
    }

    @Test(arguments: TestEngine.available)
    func demoCommunityIsBelievable(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let credentials = try #require(
                try await DemoCommunity.seed(
                    store, hashPassword: { "hash:" + $0 }, generatePassword: { "pw-" + newID() }))
            #expect(Set(credentials.map(\.role)) == Set(Role.allCases))
            let community = try #require(try await store.communities(scope: .everything, memberships: []).first)
            let o = try await store.overview(community, scope: .everything)
            #expect(o.buildings == 3 && (140...160).contains(o.households))
            #expect((300...400).contains(o.currentResidents), "\(o.currentResidents)")
            #expect(o.endedLeases > 0 && o.careTagged > 0 && o.rented > 0 && o.vacant > 0)
            #expect((40...80).contains(o.vehicles), "\(o.vehicles)")
            #expect(o.organisations == 7 && o.grids == 1)
            #expect(
                try await DemoCommunity.seed(store, hashPassword: { $0 }, generatePassword: { "x" }) == nil,
                "seeds only an empty database")
        }
    }
}
