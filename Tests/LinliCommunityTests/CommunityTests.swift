import Foundation
import LinliStorage
import Testing

@testable import LinliCommunity
@testable import LinliHTTP

@Suite("Community values")
struct CommunityTests {
    @Test func careTagsEncodeForLikeSearch() {
        #expect(CareTag.encode([.disabled, .elderlyAlone, .disabled]) == ",disabled,elderly_alone,")
        #expect(CareTag.decode(",disabled,elderly_alone,") == [.disabled, .elderlyAlone])
        #expect(CareTag.encode([]) == "")
    }

    /// The listings write their own JSON (`JSONWritable`); what they write must read back as what
    /// `JSONEncoder` writes: the same keys, nil optionals left out, numbers and escapes alike.
    @Test func listingsWriteTheJSONTheirEncodableWould() throws {
        func same<T: JSONWritable>(_ value: T) throws {
            var json = JSONWriter()
            value.write(json: &json)
            let written = try JSONSerialization.jsonObject(with: Data(json.bytes)) as? NSDictionary
            let encoded = try JSONSerialization.jsonObject(with: JSON.encoder.encode(value)) as? NSDictionary
            #expect(written != nil && written == encoded)
        }
        let tricky = "1号楼 \"东\" \\ a/b \n\t\u{01}"
        let households = [
            HouseholdListing(
                id: "h1", communityId: "c", buildingId: "b", buildingName: tricky, unitId: "u", unitName: "1单元",
                room: "101", floor: -1, area: 88.5, occupancy: .ownerOccupied, residents: 3),
            HouseholdListing(
                id: "h2", communityId: "c", buildingId: "b", buildingName: "1号楼", unitId: "u", unitName: "",
                room: "102", floor: 1, area: nil, occupancy: .vacant, residents: 0),
            HouseholdListing(
                id: "h3", communityId: "c", buildingId: "b", buildingName: "1号楼", unitId: "u", unitName: "",
                room: "103", floor: 1, area: 69, occupancy: .rented, residents: 1),
        ]
        try same(Page(items: households, total: 156, limit: 50, offset: 0))
        try same(Page(items: [HouseholdListing](), total: 0, limit: 50, offset: 100))
        var json = JSONWriter()
        households[2].write(json: &json)
        #expect(String(decoding: json.bytes, as: UTF8.self).contains("\"area\":69,"))
        let residency = ResidencyListing(
            id: "r", personId: "p", personName: tricky, householdId: "h1", householdLabel: "1号楼 1单元 101",
            role: .tenant, leaseStart: "2025-01-01", leaseEnd: nil, movedIn: "2025-01-01", movedOut: nil,
            current: true)
        var ended = residency
        ended.leaseEnd = "2025-12-31"
        ended.movedOut = "2025-12-31"
        ended.current = false
        let people = [
            PersonView(
                id: "p", communityId: "c", name: "王芳", phone: "138****0000", identityNumber: "3301**********3108",
                careTags: [.elderlyAlone, .disabled], residencies: [residency, ended]),
            PersonView(
                id: "q", communityId: "c", name: tricky, phone: "", identityNumber: nil, careTags: [],
                residencies: []),
        ]
        try same(Page(items: people, total: 2, limit: 20, offset: 0))
    }
}
