import Foundation
import LinliThings
import Testing

@testable import LinliAlink

@Suite("Alink shadow documents")
struct ShadowDocumentTests {
    func parse(_ text: String) -> Result<ShadowRequest, ShadowFault> { ShadowRequest.parse(Data(text.utf8)) }

    func fault(_ text: String) -> ShadowFault.Code? {
        if case let .failure(f) = parse(text) { return f.code }
        return nil
    }

    func request(_ text: String) throws -> ShadowRequest {
        try parse(text).get()
    }

    @Test func requestsAreReadAsAlibabaWritesThem() throws {
        #expect(try request(#"{"method":"get"}"#) == .get)
        #expect(
            try request(#"{"method":"update","state":{"reported":{"color":"red"}},"version":1}"#)
                == .update(.init(reported: .attributes(["color": .string("red")])), version: 1))
        #expect(
            try request(#"{"method":"update","state":{"desired":"null"},"version":3}"#)
                == .update(.init(desired: .clear), version: 3))
        #expect(
            try request(#"{"method":"delete","state":{"reported":"null"},"version":4}"#)
                == .delete(.init(reported: .clear), version: 4))
        #expect(
            try request(#"{"method":"delete","state":{"reported":{"color":"null","temperature":"null"}},"version":5}"#)
                == .delete(
                    .init(reported: .attributes(["color": .string("null"), "temperature": .string("null")])), version: 5
                ))
    }

    @Test func eachFaultHasAlibabasCode() {
        #expect(fault("") == .empty)
        #expect(fault("  \n") == .empty)
        #expect(fault("not json") == .invalidJSON)
        #expect(fault("[1,2]") == .invalidJSON)
        #expect(fault(#"{"state":{}}"#) == .noMethod)
        #expect(fault(#"{"method":"replace","state":{"reported":{"a":1}},"version":1}"#) == .invalidMethod)
        #expect(fault(#"{"method":7}"#) == .invalidMethod)
        #expect(fault(#"{"method":"update","version":1}"#) == .noState)
        #expect(fault(#"{"method":"update","state":"on","version":1}"#) == .noState)
        #expect(fault(#"{"method":"update","state":{"reported":{"a":1}}}"#) == .invalidVersion)
        #expect(fault(#"{"method":"update","state":{"reported":{"a":1}},"version":"2"}"#) == .invalidVersion)
        #expect(fault(#"{"method":"update","state":{"reported":{"a":1}},"version":1.5}"#) == .invalidVersion)
        #expect(fault(#"{"method":"update","state":{"reported":{"a":1}},"version":-1}"#) == .invalidVersion)
        #expect(fault(#"{"method":"update","state":{},"version":1}"#) == .noReported)
        #expect(fault(#"{"method":"update","state":{"reported":{}},"version":1}"#) == .blankReported)
        #expect(fault(#"{"method":"update","state":{"reported":[1]},"version":1}"#) == .blankReported)
        let many = (0...ShadowDocument.attributeLimit).map { "\"a\($0)\":1" }.joined(separator: ",")
        #expect(fault(#"{"method":"update","state":{"reported":{\#(many)}},"version":1}"#) == .tooManyAttributes)
    }

    @Test func updatesMergeAndVersionsOnlyGoUp() throws {
        let first = try ShadowDocument().applying(
            request(#"{"method":"update","state":{"reported":{"color":"red","level":3}},"version":1}"#), at: 100)
        #expect(
            first.reported == ["color": .string("red"), "level": .int(3)]
                && first.reportedAt == ["color": 100, "level": 100])
        #expect(first.version == 1 && first.timestamp == 100)

        // The platform wants green; the device reports green and clears what was wanted.
        let wanted = try first.applying(
            .update(.init(desired: .attributes(["color": .string("green")])), version: 2), at: 200)
        #expect(
            wanted.desired == ["color": .string("green")] && wanted.desiredAt == ["color": 200]
                && wanted.reported["color"] == .string("red"))
        let done = try wanted.applying(
            request(#"{"method":"update","state":{"reported":{"color":"green"},"desired":"null"},"version":3}"#),
            at: 300)
        #expect(
            done.desired.isEmpty && done.desiredAt.isEmpty
                && done.reported == ["color": .string("green"), "level": .int(3)])
        #expect(done.reportedAt == ["color": 300, "level": 100], "an attribute not in the update keeps its time")

        // A version at or below the document's is a conflict and changes nothing.
        #expect(throws: ShadowFault.self) {
            try done.applying(.update(.init(reported: .attributes(["level": .int(9)])), version: 3), at: 400)
        }
        do {
            _ = try done.applying(.update(.init(reported: .attributes(["level": .int(9)])), version: 2), at: 400)
            Issue.record("an older version was accepted")
        } catch {
            #expect(error.code == .versionConflict)
        }

        // A delete takes out what it names, or the whole side; "null" in an update does too.
        let deleted = try done.applying(
            request(#"{"method":"delete","state":{"reported":{"color":"null"}},"version":7}"#), at: 500)
        #expect(deleted.reported == ["level": .int(3)] && deleted.reportedAt == ["level": 100] && deleted.version == 7)
        let nulled = try done.applying(
            request(#"{"method":"update","state":{"reported":{"level":"null","mode":"eco"}},"version":8}"#), at: 600)
        #expect(nulled.reported == ["color": .string("green"), "mode": .string("eco")])
        let cleared = try done.applying(
            request(#"{"method":"delete","state":{"reported":"null"},"version":9}"#), at: 700)
        #expect(cleared.reported.isEmpty && cleared.reportedAt.isEmpty && cleared.version == 9)
        #expect(try done.applying(.get, at: 800) == done)
    }

    @Test func limitsHoldAcrossUpdates() throws {
        var document = ShadowDocument()
        for batch in 0..<2 {
            let items = Dictionary(uniqueKeysWithValues: (0..<64).map { ("a\(batch)_\($0)", JSONValue.int(1)) })
            document = try document.applying(
                .update(.init(reported: .attributes(items)), version: Int64(batch + 1)), at: 1)
        }
        #expect(document.reported.count == 128)
        do {
            _ = try document.applying(.update(.init(reported: .attributes(["one_more": .int(1)])), version: 3), at: 1)
            Issue.record("a 129th attribute was accepted")
        } catch {
            #expect(error.code == .tooManyAttributes)
        }
        do {
            _ = try ShadowDocument().applying(
                .update(
                    .init(reported: .attributes(["blob": .string(String(repeating: "x", count: 17_000))])), version: 1),
                at: 1)
            Issue.record("a document over 16 KiB was accepted")
        } catch {
            #expect(error.code == .tooManyAttributes && error.message.contains("16 KiB"))
        }
    }

    @Test func documentsAndAnswersRoundTrip() throws {
        var document = ShadowDocument()
        document = try document.applying(
            .update(
                .init(
                    reported: .attributes(["color": .string("red"), "zones": .array([.int(1), .int(2)])]),
                    desired: .attributes(["color": .string("green")])), version: 4), at: 1_469_564_492)
        let stored = try #require(JSONValue.parse(document.json.serialized()))
        let read = try #require(ShadowDocument(json: stored))
        #expect(read == document)
        #expect(ShadowDocument(json: .object(["state": .object([:])])) == nil)

        let answer = try #require(JSONValue.parse(AlinkShadow.document(document, method: "control", at: 1_469_564_500)))
        #expect(
            answer["method"] == .string("control") && answer["version"] == .int(4)
                && answer["timestamp"] == .int(1_469_564_500))
        #expect(answer["payload"]?["status"] == .string("success"))
        #expect(answer["payload"]?["state"]?["desired"]?["color"] == .string("green"))
        #expect(answer["payload"]?["metadata"]?["reported"]?["color"]?["timestamp"] == .int(1_469_564_492))

        let accepted = try #require(JSONValue.parse(AlinkShadow.accepted(version: 4, at: 9)))
        #expect(
            accepted
                == .object([
                    "method": .string("reply"), "payload": .object(["status": .string("success"), "version": .int(4)]),
                    "timestamp": .int(9),
                ]))
        let refused = try #require(JSONValue.parse(AlinkShadow.refused(ShadowFault(.versionConflict, "old"), at: 9)))
        #expect(refused["payload"]?["status"] == .string("error"))
        #expect(
            refused["payload"]?["content"]?["errorcode"] == .string("409")
                && refused["payload"]?["content"]?["errormessage"] == .string("old"))
    }

    @Test func topicsAndPolicy() throws {
        #expect(AlinkShadow.parseUpdate("/shadow/update/a1Key/lamp-1")! == ("a1Key", "lamp-1"))
        #expect(AlinkShadow.parseUpdate("/shadow/get/a1Key/lamp-1") == nil)
        #expect(AlinkShadow.parseUpdate("/shadow/update/a1Key") == nil)
        #expect(AlinkShadow.parseUpdate("/shadow/update/a1Key/lamp-1/x") == nil)
        #expect(AlinkShadow.parseUpdate("/shadow/update//lamp-1") == nil)
        let signIn = try #require(AlinkSignIn(AlinkTests.connect(secret: "s3cret")))
        #expect(signIn.policy.mayPublish(to: "/shadow/update/a1Test/door-1"))
        #expect(signIn.policy.maySubscribe(to: "/shadow/get/a1Test/door-1"))
        #expect(!signIn.policy.mayPublish(to: "/shadow/update/a1Test/door-2"), "another device's shadow")
        #expect(!signIn.policy.maySubscribe(to: "/shadow/get/a1Test/+"))
        #expect(!signIn.policy.mayPublish(to: "/shadow/get/a1Test/door-1"), "answers come from Linli only")
    }
}
