import Foundation
import LinliMQTT
import NIOCore
import Testing
@testable import LinliAlink

@Suite("Alink")
struct AlinkTests {
    static func connect(secret: String, method: AlinkSignIn.SignMethod = .hmacsha256, timestamp: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> Connect {
        let content = "clientIddoor-1deviceNamedoor-1productKeya1Testtimestamp\(timestamp)"
        let password = AlinkSignIn.sign(content, secret: secret, method: method)
        return Connect(cleanSession: true, keepAlive: 60, clientId: "door-1|securemode=3,signmethod=\(method.rawValue),timestamp=\(timestamp)|",
                       username: "door-1&a1Test", password: ByteBuffer(string: password))
    }

    @Test func signInIsParsedAndVerified() throws {
        for method in AlinkSignIn.SignMethod.allCases {
            let signIn = try #require(AlinkSignIn(Self.connect(secret: "s3cret", method: method)))
            #expect(signIn.productKey == "a1Test" && signIn.deviceName == "door-1" && signIn.secureMode == 3 && signIn.signMethod == method)
            #expect(signIn.verify(secret: "s3cret"))
            #expect(!signIn.verify(secret: "other"))
            #expect(signIn.isFresh())
        }
        // HMAC-SHA256 of a known string with a known key (RFC 4231 test case 2).
        #expect(AlinkSignIn.sign("what do ya want for nothing?", secret: "Jefe", method: .hmacsha256) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let stale = try #require(AlinkSignIn(Self.connect(secret: "s3cret", timestamp: 1_000)))
        #expect(!stale.isFresh(), "a signature from long ago is a replay")
        let inSeconds = try #require(AlinkSignIn(Self.connect(secret: "s3cret", timestamp: Int64(Date().timeIntervalSince1970))))
        #expect(inSeconds.isFresh() && inSeconds.verify(secret: "s3cret"), "Link Kit for Python signs a timestamp in seconds")
        #expect(AlinkSignIn(Connect(cleanSession: true, keepAlive: 1, clientId: "plain", username: "frigate", password: ByteBuffer(string: "x"))) == nil)
    }

    @Test func devicesMayUseOnlyTheirOwnTopics() throws {
        let policy = try #require(AlinkSignIn(Self.connect(secret: "s"))).policy
        #expect(policy.mayPublish(to: "/sys/a1Test/door-1/thing/event/property/post"))
        #expect(policy.mayPublish(to: "/a1Test/door-1/user/update"))
        #expect(!policy.mayPublish(to: "/sys/a1Test/door-2/thing/event/property/post"))
        #expect(!policy.mayPublish(to: "/sys/a1Other/door-1/thing/event/property/post"))
        #expect(policy.maySubscribe(to: "/sys/a1Test/door-1/thing/service/+"))
        #expect(!policy.maySubscribe(to: "/sys/+/+/thing/service/+"))
        #expect(!policy.maySubscribe(to: "#"))
    }

    @Test func topicsAndRequestsAreUnderstood() {
        #expect(AlinkTopic.parse("/sys/pk/dn/thing/event/property/post")?.kind == .propertyPost)
        #expect(AlinkTopic.parse("/sys/pk/dn/thing/event/SmokeAlarm/post")?.kind == .eventPost("SmokeAlarm"))
        #expect(AlinkTopic.parse("/sys/pk/dn/thing/service/property/set_reply")?.kind == .propertySetReply)
        #expect(AlinkTopic.parse("/sys/pk/dn/thing/service/Unlock_reply")?.kind == .serviceReply("Unlock"))
        #expect(AlinkTopic.parse("/pk/dn/user/update") == nil)
        #expect(AlinkRequest.parse(Data(#"{"id":"7","version":"1.0","params":{"a":1},"method":"thing.event.property.post"}"#.utf8))?.id == "7")
        #expect(AlinkRequest.parse(Data(#"{"id":8,"params":{}}"#.utf8))?.id == "8")
        #expect(AlinkRequest.parse(Data("nonsense".utf8)) == nil)
        #expect(AlinkRequest.parse(Data(#"{"id":"1"}"#.utf8)) == nil)
    }
}
