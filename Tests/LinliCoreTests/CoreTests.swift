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
        let guardian = Caller(accountId: "a", username: "g", displayName: "g", bindings: [RoleBinding(accountId: "a", role: .guardOnDuty, communityId: community)])
        #expect(guardian.can(.viewPeople) && !guardian.can(.managePeople) && !guardian.can(.revealIdentity) && !guardian.can(.seeFullPhone))
        #expect(guardian.scope(for: .viewPeople).communities == [community])
        let nobody = Caller(accountId: "n", username: "n", displayName: "n", bindings: [])
        #expect(Capability.allCases.allSatisfy { !nobody.can($0) })
        let worker = Caller(accountId: "w", username: "w", displayName: "w", bindings: [RoleBinding(accountId: "w", role: .gridWorker, communityId: community, gridId: "g1")], gridBuildings: ["g1": ["b1", "b2"]])
        #expect(worker.scope(for: .viewPeople).buildings == ["b1", "b2"])
        #expect(!worker.scope(for: .viewPeople).coversCommunity(community))
        let admin = Caller(accountId: "p", username: "p", displayName: "p", bindings: [RoleBinding(accountId: "p", role: .platformAdmin, communityId: nil)])
        #expect(admin.scope(for: .createCommunity).everything)
    }

    @Test func careTagsEncodeForLikeSearch() {
        #expect(CareTag.encode([.disabled, .elderlyAlone, .disabled]) == ",disabled,elderly_alone,")
        #expect(CareTag.decode(",disabled,elderly_alone,") == [.disabled, .elderlyAlone])
        #expect(CareTag.encode([]) == "")
    }
}
