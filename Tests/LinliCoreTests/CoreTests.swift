import Foundation
import Testing

@testable import LinliCore

@Suite("Community values")
struct CoreTests {
    @Test func identityNumbersAreCheckedAndMasked() {
        let valid = IdentityNumber.withCheckDigit("11010519491231002")
        #expect(valid == "11010519491231002X")
        #expect(IdentityNumber.isValid(valid) && IdentityNumber.isValid(valid.lowercased()))
        #expect(!IdentityNumber.isValid("110105194912310021"))
        #expect(!IdentityNumber.isValid("12345"))
        #expect(!IdentityNumber.isValid("１１０１０５１９４９１２３１００２Ｘ"), "full-width digits are not digits here")
        #expect(IdentityNumber.masked(valid) == "1101**********002X")
        #expect(PhoneNumber.masked("13812345678") == "138****5678")
    }

    @Test func daysAreRealCalendarDays() {
        #expect(Day.isValid("2024-02-29") && !Day.isValid("2023-02-29"))
        #expect(!Day.isValid("2024-13-01") && !Day.isValid("24-01-01") && !Day.isValid("2024-1-01") && !Day.isValid(""))
    }

    @Test func fieldCipherRoundTripsAndIsKeyed() throws {
        let a = try FieldCipher(secret: FieldCipher.randomSecret())
        let b = try FieldCipher(secret: FieldCipher.randomSecret())
        let sealed = try a.encrypt("330106197001010018")
        #expect(try a.decrypt(sealed) == "330106197001010018")
        #expect(try a.encrypt("x") != a.encrypt("x"), "a fresh nonce each time")
        #expect(throws: (any Error).self) { try b.decrypt(sealed) }
        #expect(a.blindIndex("33010619700101001x") == a.blindIndex("33010619700101001X"))
        #expect(a.blindIndex("1") != b.blindIndex("1"))
        #expect(throws: ValidationFailure.self) { try FieldCipher(secret: Data([1, 2, 3])) }
    }

    @Test func validatorCollectsEveryIssue() {
        var v = Validator()
        v.text(nil, "name")
        v.text(String(repeating: "x", count: 201), "address")
        v.text("ok\u{0}", "room")
        v.phone("12", "phone")
        v.day("2024-02-30", "movedIn")
        v.number(400, "floors", in: 1...300)
        #expect(v.issues.map(\.field) == ["name", "address", "room", "phone", "movedIn", "floors"])
        #expect(throws: ValidationFailure.self) { try v.check() }
    }

    @Test func rolesDenyByDefault() {
        let community = "c1"
        let guardian = Caller(
            accountId: "a", username: "g", displayName: "g",
            bindings: [RoleBinding(accountId: "a", role: .guardOnDuty, communityId: community)])
        #expect(
            guardian.can(.viewPeople) && !guardian.can(.managePeople) && !guardian.can(.revealIdentity)
                && !guardian.can(.seeFullPhone))
        #expect(guardian.scope(for: .viewPeople).communities == [community])
        let nobody = Caller(accountId: "n", username: "n", displayName: "n", bindings: [])
        #expect(Capability.allCases.allSatisfy { !nobody.can($0) })
        let worker = Caller(
            accountId: "w", username: "w", displayName: "w",
            bindings: [RoleBinding(accountId: "w", role: .gridWorker, communityId: community, gridId: "g1")],
            gridBuildings: ["g1": ["b1", "b2"]])
        #expect(worker.scope(for: .viewPeople).buildings == ["b1", "b2"])
        #expect(!worker.scope(for: .viewPeople).coversCommunity(community))
        let admin = Caller(
            accountId: "p", username: "p", displayName: "p",
            bindings: [RoleBinding(accountId: "p", role: .platformAdmin, communityId: nil)])
        #expect(admin.scope(for: .createCommunity).everything)
    }

    @Test func quietHoursHoldUntilTheirEndAcrossMidnight() throws {
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = try #require(TimeZone(identifier: "UTC"))
        let night = try #require(QuietHours(from: "22:00", to: "07:00"))
        let day = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01 00:00 UTC
        func at(_ h: Int, _ m: Int = 0) -> Date { day.addingTimeInterval(Double(h * 3600 + m * 60)) }
        #expect(night.release(after: at(23), calendar: utc) == at(24 + 7), "in the evening: the next morning")
        #expect(night.release(after: at(6, 59), calendar: utc) == at(7), "before dawn: this morning")
        #expect(night.release(after: at(12), calendar: utc) == at(12), "outside: at once")
        #expect(night.release(after: at(7), calendar: utc) == at(7), "the end is not quiet")
        let lunch = try #require(QuietHours(from: "12:00", to: "13:30"))
        #expect(lunch.release(after: at(12, 15), calendar: utc) == at(13, 30))
        #expect(
            QuietHours(from: "22:00", to: "22:00") == nil && QuietHours(from: "7:5", to: "08:00") == nil
                && QuietHours(from: nil, to: "08:00") == nil)
        #expect(
            TimeOfDay.minutes("23:59") == 1439 && TimeOfDay.minutes("24:00") == nil && TimeOfDay.minutes("12:60") == nil
        )
    }
}
