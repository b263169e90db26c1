import Foundation
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliHouseholdImport
@testable import LinliStorage

/// Sheets as offices have them: saved by Excel in GBK, typos in building names, every word for a
/// role; and the export that goes back in.
@Suite("Household sheets from spreadsheets")
struct ImportSheetTests {
    /// "楼栋,单元,房号,姓名,身份,关怀标签\n1号楼,1单元,101,孙丽,租户,独居老人\n" as Python's
    /// `.encode('gbk')` writes it, as Excel on a Chinese Windows saves a CSV.
    static let gbk: [UInt8] = [
        194, 165, 182, 176, 44, 181, 165, 212, 170, 44, 183, 191, 186, 197, 44, 208, 213, 195, 251, 44, 201, 237, 183,
        221, 44, 185, 216, 187, 179, 177, 234, 199, 169, 10, 49, 186, 197, 194, 165, 44, 49, 181, 165, 212, 170, 44, 49,
        48, 49, 44, 203, 239, 192, 246, 44, 215, 226, 187, 167, 44, 182, 192, 190, 211, 192, 207, 200, 203, 10,
    ]
    static let sheetText = "楼栋,单元,房号,姓名,身份,关怀标签\n1号楼,1单元,101,孙丽,租户,独居老人\n"

    @Test func gbkAndUTF8WithOrWithoutBOMReadTheSame() throws {
        let gbk = try CSV.text(spreadsheet: Self.gbk)
        #expect(gbk.encoding == .gb18030)
        #expect(gbk.text == Self.sheetText)
        let bom = try CSV.text(spreadsheet: [0xEF, 0xBB, 0xBF] + Array(Self.sheetText.utf8))
        #expect(bom.encoding == .utf8)
        let plain = try CSV.text(spreadsheet: Array(Self.sheetText.utf8))
        #expect(plain.text == Self.sheetText && plain.encoding == .utf8)
        for text in [gbk.text, bom.text, plain.text] {
            let parsed = HouseholdSheet.parse(text)
            #expect(parsed.problems.isEmpty, "\(parsed.problems)")
            #expect(parsed.lines.first?.resident?.person.name == "孙丽")
            #expect(parsed.lines.first?.resident?.role == .tenant)
            #expect(parsed.lines.first?.resident?.person.careTags == [.elderlyAlone])
        }
        // A character outside GBK (GB 18030's four-byte form, 𠀀 U+20000) reads too.
        let fourBytes: [UInt8] = [0x95, 0x32, 0x82, 0x36]
        #expect(try CSV.text(spreadsheet: fourBytes).text == "\u{20000}")
    }

    /// Every code of every column that takes codes, by its code, by its label in both catalogues
    /// and by the words offices use: the sheet takes them all, and the page lists what it takes.
    @Test func everyLabelAndSynonymOfEveryCodeIsTaken() throws {
        let folder = try CommunityModule.templates
        var labels: [String: String] = [:]
        for language in ["zh-CN", "en"] {
            let data = try Data(contentsOf: folder.appendingPathComponent("strings.\(language).json"))
            for (key, value) in try JSONDecoder().decode([String: String].self, from: data) {
                labels[language + ":" + key] = value
            }
        }
        func check<T: SheetCode>(_ type: T.Type, prefix: String) {
            for code in T.allCases {
                var names = [code.rawValue, code.rawValue.uppercased()] + (T.synonyms[code] ?? [])
                for language in ["zh-CN", "en"] {
                    let label = labels[language + ":" + prefix + "." + code.rawValue]
                    #expect(label != nil, "\(prefix).\(code.rawValue) in \(language)")
                    if let label { names += [label, label.lowercased(), " \(label) "] }
                }
                for name in names { #expect(T(label: name) == code, "\(name) → \(code.rawValue)") }
            }
            #expect(T(label: "9号楼") == nil)
        }
        check(ResidencyRole.self, prefix: "residencyRole")
        check(Occupancy.self, prefix: "occupancy")
        check(CareTag.self, prefix: "careTag")
        // The tester's pair: 家属 was taken and 租户 refused.
        #expect(ResidencyRole(label: "家属") == .family && ResidencyRole(label: "租户") == .tenant)
        #expect(
            ResidencyRole(label: "Family member") == .family && Occupancy(label: "Owner-occupied") == .ownerOccupied)
        #expect(CareTag(label: "Elderly living alone") == .elderlyAlone)
    }

    @Test(arguments: TestEngine.available)
    func unknownBuildingsAndUnitsAreReportedUnlessToBeCreated(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let sheet = """
                楼栋,单元,房号,姓名
                1号楼,1单元,103,甲
                9号楼,1单元,101,乙
                1号楼,7单元,101,丙
                """
            let refused = try await store.importHouseholds(
                communityId: place.community.id, csv: sheet, onlyValid: false, dryRun: false, createPlaces: false,
                actor: tester)
            #expect(!refused.imported)
            #expect(refused.problems.map(\.line) == [3, 4])
            #expect(refused.problems.map(\.field) == ["building", "unit"])
            #expect(refused.problems.map(\.reason) == [HouseholdSheet.unknownBuilding, HouseholdSheet.unknownUnit])
            let buildings = try await store.read { db in try await db.count("SELECT COUNT(*) AS n FROM buildings") }
            #expect(buildings == 1, "no 9号楼 made")
            // Only the valid rows: the known building's row goes in, the others stay out.
            let valid = try await store.importHouseholds(
                communityId: place.community.id, csv: sheet, onlyValid: true, dryRun: false, createPlaces: false,
                actor: tester)
            #expect(valid.imported && valid.householdsCreated == 1 && valid.buildingsCreated == 0)
            // Asked to create them, it does.
            let made = try await store.importHouseholds(
                communityId: place.community.id, csv: sheet, onlyValid: false, dryRun: false, createPlaces: true,
                actor: tester)
            #expect(made.imported && made.problems.isEmpty)
            #expect(made.buildingsCreated == 1 && made.unitsCreated == 2 && made.householdsCreated == 2)
        }
    }

    static let id1 = IdentityNumber.withCheckDigit("33010619700101001")
    static let id2 = IdentityNumber.withCheckDigit("33010619850505002")

    /// The export with whole identity numbers goes into another community and comes out the same;
    /// back into its own community it makes nobody twice.
    @Test(arguments: TestEngine.available)
    func theFullExportRoundTrips(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let a = try await Place.make(store, name: "甲小区")
            let sheet = """
                楼栋,单元,房号,楼层,面积,居住状态,姓名,手机,身份证号,身份,租期开始,租期结束,关怀标签,入住日期
                1号楼,1单元,101,1,88.5,自住,孙丽,13911112222,\(Self.id1),业主,,,独居老人;重点关爱,2020-05-01
                1号楼,1单元,102,1,90,出租,"周, 小杰",13911113333,\(Self.id2),租户,2025-01-01,2099-01-01,,2025-01-01
                1号楼,1单元,102,1,90,出租,周小妹,13911114444,,家属,,,儿童,2025-01-01
                """
            let first = try await store.importHouseholds(
                communityId: a.community.id, csv: sheet, onlyValid: false, dryRun: false, createPlaces: false,
                actor: tester)
            #expect(first.imported, "\(first.problems)")
            let masked = try await store.exportHouseholds(
                communityId: a.community.id, scope: scope(community: a.community.id))
            #expect(!masked.contains(Self.id1) && masked.contains(IdentityNumber.masked(Self.id1)))
            let full = try await store.exportHouseholds(
                communityId: a.community.id, scope: scope(community: a.community.id), fullIdentity: true, actor: tester)
            #expect(full.contains(Self.id1) && full.contains(Self.id2))
            let audit = try await store.read { db in
                try await db.count(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'households.exported.identity' AND community_id = \(bind: a.community.id)"
                )
            }
            #expect(audit == 1, "the whole numbers' read is on the audit log")

            let b = try await Place.make(store, name: "乙小区")
            let into = try await store.importHouseholds(
                communityId: b.community.id, csv: full, onlyValid: false, dryRun: false, createPlaces: false,
                actor: tester)
            #expect(into.imported && into.problems.isEmpty, "\(into.problems)")
            #expect(into.peopleCreated == 3 && into.residenciesCreated == 3)
            let again = try await store.exportHouseholds(
                communityId: b.community.id, scope: scope(community: b.community.id), fullIdentity: true, actor: tester)
            #expect(again == full)
            // Back into its own community: the people with numbers are found, nobody is made twice.
            let home = try await store.importHouseholds(
                communityId: a.community.id, csv: full, onlyValid: false, dryRun: true, createPlaces: false,
                actor: tester)
            #expect(home.problems.isEmpty)
        }
    }
}
