import Testing

@testable import LinliCore

@Suite("The language a page speaks")
struct LanguageTests {
    @Test func tagsAsBrowsersWriteThem() {
        #expect(Language(tag: "zh") == .zh)
        #expect(Language(tag: "zh-Hans-CN") == .zh)
        #expect(Language(tag: "ZH-tw") == .zh)
        #expect(Language(tag: " en-GB") == .en)
        #expect(Language(tag: "fr") == nil)
        #expect(Language(tag: "") == nil)
    }

    @Test func acceptLanguageByWeightThenOrder() {
        #expect(Language.negotiate(nil) == .zh)
        #expect(Language.negotiate("") == .zh)
        #expect(Language.negotiate("en-US,en;q=0.9") == .en)
        #expect(Language.negotiate("en-US;q=0.5,zh-CN;q=0.8") == .zh)
        #expect(Language.negotiate("fr-FR,fr;q=0.9,en;q=0.8,zh;q=0.7") == .en)
        #expect(Language.negotiate("zh-CN,zh;q=0.9,en;q=0.8") == .zh)
        // Refused (q=0) and unknown languages count for nothing; junk does not crash.
        #expect(Language.negotiate("en;q=0, de") == .zh)
        #expect(Language.negotiate(";;;,q=,en;q=abc") == .zh)
        #expect(Language.negotiate("en;q=0.3,en;q=0.2") == .en)
    }
}
