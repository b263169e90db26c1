import Testing

@testable import LinliCommunity

@Suite("Community values")
struct CommunityTests {
    @Test func careTagsEncodeForLikeSearch() {
        #expect(CareTag.encode([.disabled, .elderlyAlone, .disabled]) == ",disabled,elderly_alone,")
        #expect(CareTag.decode(",disabled,elderly_alone,") == [.disabled, .elderlyAlone])
        #expect(CareTag.encode([]) == "")
    }
}
