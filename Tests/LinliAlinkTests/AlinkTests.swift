import Foundation
import LinliMQTT
import LinliThings
import NIOCore
import Testing

@testable import LinliAlink

@Suite("Alink")
struct AlinkTests {
    static func connect(
        secret: String, method: AlinkSignIn.SignMethod = .hmacsha256,
        timestamp: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
    ) -> Connect {
        let content = "clientIddoor-1deviceNamedoor-1productKeya1Testtimestamp\(timestamp)"
        let password = AlinkSignIn.sign(content, secret: secret, method: method)
        return Connect(
            cleanSession: true, keepAlive: 60,
            clientId: "door-1|securemode=3,signmethod=\(method.rawValue),timestamp=\(timestamp)|",
            username: "door-1&a1Test", password: ByteBuffer(string: password))
    }

    @Test func signInIsParsedAndVerified() throws {
        for method in AlinkSignIn.SignMethod.allCases {
            let signIn = try #require(AlinkSignIn(Self.connect(secret: "s3cret", method: method)))
            #expect(
                signIn.productKey == "a1Test" && signIn.deviceName == "door-1" && signIn.secureMode == 3
                    && signIn.signMethod == method)
            #expect(signIn.verify(secret: "s3cret"))
            #expect(!signIn.verify(secret: "other"))
            #expect(signIn.isFresh())
        }
        // HMAC-SHA256 of a known string with a known key (RFC 4231 test case 2).
        #expect(
            AlinkSignIn.sign("what do ya want for nothing?", secret: "Jefe", method: .hmacsha256)
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let stale = try #require(AlinkSignIn(Self.connect(secret: "s3cret", timestamp: 1_000)))
        #expect(!stale.isFresh(), "a signature from long ago is a replay")
        let inSeconds = try #require(
            AlinkSignIn(Self.connect(secret: "s3cret", timestamp: Int64(Date().timeIntervalSince1970))))
        #expect(
            inSeconds.isFresh() && inSeconds.verify(secret: "s3cret"),
            "Link Kit for Python signs a timestamp in seconds")
        #expect(
            AlinkSignIn(
                Connect(
                    cleanSession: true, keepAlive: 1, clientId: "plain", username: "frigate",
                    password: ByteBuffer(string: "x"))) == nil)
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
        #expect(
            policy.mayPublish(to: "/ext/ntp/a1Test/door-1/request")
                && policy.maySubscribe(to: "/ext/ntp/a1Test/door-1/response"))
        #expect(
            !policy.mayPublish(to: "/ext/ntp/a1Test/door-2/request")
                && !policy.mayPublish(to: "/ext/ntp/a1Test/door-1/response"))
    }

    @Test func theTimeServiceEchoesTheDevicesClockBesideTheServers() throws {
        #expect(AlinkTime.parseRequest("/ext/ntp/a1Test/door-1/request")! == ("a1Test", "door-1"))
        for other in [
            "/ext/ntp/a1Test/door-1/response", "/ext/ntp/a1Test//request", "/ext/ntp/a1Test/door-1/request/x",
            "/sys/a1Test/door-1/thing/event/property/post",
        ] {
            #expect(AlinkTime.parseRequest(other) == nil, "\(other)")
        }
        func answer(_ body: String) -> [String: JSONValue] {
            guard
                case let .object(fields)? = JSONValue.parse(
                    Data(
                        AlinkTime.response(
                            to: Data(body.utf8), receivedAt: 1_700_000_000_000, sentAt: 1_700_000_000_002)))
            else { return [:] }
            return fields
        }
        #expect(
            answer(#"{"deviceSendTime":"1571724098000"}"#) == [
                "deviceSendTime": .string("1571724098000"), "serverRecvTime": .string("1700000000000"),
                "serverSendTime": .string("1700000000002"),
            ])
        #expect(answer(#"{"deviceSendTime":42}"#)["deviceSendTime"] == .string("42"), "a number is taken too")
        for unusable in [#"{"deviceSendTime":"soon"}"#, #"{"deviceSendTime":-1}"#, "not json", "{}"] {
            let fields = answer(unusable)
            #expect(
                fields["deviceSendTime"] == nil && fields["serverSendTime"] == .string("1700000000002"), "\(unusable)")
        }
    }

    @Test func topicsAndRequestsAreUnderstood() {
        #expect(AlinkTopic.parse("/sys/pk/dn/thing/event/property/post")?.kind == .propertyPost)
        #expect(AlinkTopic.parse("/sys/pk/dn/thing/event/SmokeAlarm/post")?.kind == .eventPost("SmokeAlarm"))
        #expect(AlinkTopic.parse("/sys/pk/dn/thing/service/property/set_reply")?.kind == .propertySetReply)
        #expect(AlinkTopic.parse("/sys/pk/dn/thing/service/Unlock_reply")?.kind == .serviceReply("Unlock"))
        #expect(AlinkTopic.parse("/pk/dn/user/update") == nil)
        let post = AlinkTopic.parse("/sys/a1Bench/bench-b-7/thing/event/property/post")
        #expect(post?.productKey == "a1Bench" && post?.deviceName == "bench-b-7" && post?.kind == .propertyPost)
        #expect(AlinkTopic.parse("/sys/pk/dn/x/thing/event/property/post")?.kind == .other)
        #expect(AlinkTopic.parse("/sys/pk/thing/event/property/post")?.kind == .other)
        #expect(AlinkTopic.parse("/sys//thing/event/property/post")?.kind == .other)
        #expect(AlinkTopic.parse("/sys/p/d/thing/event/property/post/x")?.kind == .other)
        for id in ["7", "", "a\"b\\c", "门\n1", "x/y", "\u{7f}", "tab\there"] {
            #expect(AlinkCode.success(id: id) == AlinkCode.reply(id: id, code: AlinkCode.success, message: "success"))
        }
        let unicode = AlinkTopic.parse("/sys/pk/门-1/thing/event/property/post")
        #expect(unicode?.deviceName == "门-1" && unicode?.kind == .propertyPost)
        #expect(
            AlinkRequest.parse(
                Data(#"{"id":"7","version":"1.0","params":{"a":1},"method":"thing.event.property.post"}"#.utf8))?.id
                == "7")
        #expect(AlinkRequest.parse(Data(#"{"id":8,"params":{}}"#.utf8))?.id == "8")
        #expect(AlinkRequest.parse(Data("nonsense".utf8)) == nil)
        #expect(AlinkRequest.parse(Data(#"{"id":"1"}"#.utf8)) == nil)
        // The first of duplicate members wins; an id that is neither text nor an integer is no id.
        let twice = AlinkRequest.parse(
            Data(#"{"id":"1","id":"2","params":{"a":1},"params":{"b":2},"method":"m","method":"n"}"#.utf8))
        #expect(twice?.id == "1" && twice?.params == .object(["a": .int(1)]) && twice?.method == "m")
        #expect(AlinkRequest.parse(Data(#"{"id":1.5,"params":{}}"#.utf8)) == nil)
        #expect(AlinkRequest.parse(Data(#"{"id":"1","params":{}} trailing"#.utf8)) == nil)
        #expect(AlinkRequest.parse(Data(#"[{"id":"1","params":{}}]"#.utf8)) == nil)
    }

    @Test func gatewayRequestTopicsAreTheGatewaysOwn() {
        #expect(GatewayRequest.parse("/sys/a1Gw/gw-1/thing/topo/add")! == ("a1Gw", "gw-1", .topologyAdd))
        #expect(GatewayRequest.parse("/sys/a1Gw/gw-1/thing/topo/delete")! == ("a1Gw", "gw-1", .topologyDelete))
        #expect(GatewayRequest.parse("/sys/a1Gw/gw-1/thing/topo/get")! == ("a1Gw", "gw-1", .topologyGet))
        #expect(GatewayRequest.parse("/sys/a1Gw/gw-1/thing/sub/register")! == ("a1Gw", "gw-1", .register))
        #expect(GatewayRequest.parse("/sys/a1Gw/gw-1/thing/sub/unregister") == nil)
        #expect(GatewayRequest.parse("/ext/session/a1Gw/gw-1/combine/login")! == ("a1Gw", "gw-1", .login(batch: false)))
        #expect(
            GatewayRequest.parse("/ext/session/a1Gw/gw-1/combine/batch_login")! == ("a1Gw", "gw-1", .login(batch: true))
        )
        #expect(
            GatewayRequest.parse("/ext/session/a1Gw/gw-1/combine/batch_logout")! == (
                "a1Gw", "gw-1", .logout(batch: true)
            ))
        #expect(GatewayRequest.parse("/sys/a1Gw/gw-1/thing/topo/add_reply") == nil)
        #expect(GatewayRequest.parse("/sys/a1Gw/gw-1/thing/event/property/post") == nil)
        #expect(GatewayRequest.parse("/ext/session/a1Gw/gw-1/combine") == nil)
        #expect(AlinkTopic.parse("/sys/a1Gw/gw-1/thing/topo/add")?.kind == .other)
    }

    @Test func subDeviceSignaturesAreCheckedWithTheSubDevicesSecret() throws {
        let now = String(Int64(Date().timeIntervalSince1970 * 1000))
        // As the Python Link Kit writes it: camel-case sign method, client id "pk.dn".
        let content = "clientIda1Smoke.smoke-1deviceNamesmoke-1productKeya1Smoketimestamp\(now)"
        let sign = AlinkSignIn.sign(content, secret: "sub-secret", method: .hmacsha256)
        let entry = JSONValue.object([
            "productKey": .string("a1Smoke"), "deviceName": .string("smoke-1"), "clientId": .string("a1Smoke.smoke-1"),
            "timestamp": .string(now), "signmethod": .string("hmacSha256"), "sign": .string(sign.uppercased()),
        ])
        let signIn = try SubDeviceSignIn(entry)
        #expect(signIn.signMethod == .hmacsha256)
        #expect(signIn.verify(secret: "sub-secret"), "hex case does not matter")
        #expect(!signIn.verify(secret: "the-gateways-secret"))
        #expect(signIn.isFresh())
        // A batch login names the method once for the whole list.
        guard case var .object(fields) = entry else { return }
        fields.removeValue(forKey: "signmethod")
        #expect(throws: SubDeviceSignIn.Fault.missing("signMethod")) { try SubDeviceSignIn(.object(fields)) }
        #expect(try SubDeviceSignIn(.object(fields), signMethod: "HMACSHA256").verify(secret: "sub-secret"))
        #expect(throws: SubDeviceSignIn.Fault.unknownSignMethod("rot13")) {
            try SubDeviceSignIn(.object(fields), signMethod: "rot13")
        }
        fields.removeValue(forKey: "sign")
        #expect(throws: SubDeviceSignIn.Fault.missing("sign")) {
            try SubDeviceSignIn(.object(fields), signMethod: "hmacsha1")
        }
        var stale = signIn
        stale.timestamp = "1000"
        #expect(!stale.isFresh())
        stale.timestamp = "not a number"
        #expect(!stale.isFresh())
    }

    @Test func aGatewayMayUseItsSessionTopics() throws {
        let policy = try #require(AlinkSignIn(Self.connect(secret: "s"))).policy
        #expect(policy.mayPublish(to: "/ext/session/a1Test/door-1/combine/login"))
        #expect(!policy.mayPublish(to: "/ext/session/a1Test/door-2/combine/login"))
    }

    @Test func syncServiceCallsAreReadFromTheirRRPCTopics() throws {
        let topic = AlinkRRPC.serviceTopic(
            messageId: "1234567890123", productKey: "a1Test", deviceName: "door-1", identifier: "Unlock")
        #expect(topic == "/ext/rrpc/1234567890123/sys/a1Test/door-1/thing/service/Unlock")
        let call = try #require(AlinkRRPC.parseService(topic))
        #expect(
            call.messageId == "1234567890123" && call.productKey == "a1Test" && call.deviceName == "door-1"
                && call.identifier == "Unlock")
        let unicode = try #require(AlinkRRPC.parseService("/ext/rrpc/7/sys/pk/门-1/thing/service/Open"))
        #expect(unicode.deviceName == "门-1" && unicode.identifier == "Open")
        for other in [
            "/sys/a1Test/door-1/thing/service/Unlock", "/sys/a1Test/door-1/thing/service/Unlock_reply",
            "/ext/rrpc//sys/a1Test/door-1/thing/service/Unlock", "/ext/rrpc/12a/sys/a1Test/door-1/thing/service/Unlock",
            "/ext/rrpc/+/sys/a1Test/door-1/thing/service/Unlock", "/ext/rrpc/1/sys/+/door-1/thing/service/Unlock",
            "/ext/rrpc/1/sys/a1Test//thing/service/Unlock", "/ext/rrpc/1/sys/a1Test/door-1/thing/service/",
            "/ext/rrpc/1/sys/a1Test/door-1/thing/service/+", "/ext/rrpc/1/sys/a1Test/door-1/thing/service/property/set",
            "/ext/rrpc/1/sys/a1Test/door-1/thing/model/down_raw", "/ext/rrpc/1/ext/a1Test/door-1/thing/service/Unlock",
            "/ext/rrpc/1/sys/a1Test/door-1/thing/event/Unlock", "/ext/rrpc/1", "/ext/rrpc/",
            "ext/rrpc/1/sys/a1Test/door-1/thing/service/Unlock",
            "/ext/rrpc/\(String(repeating: "9", count: 33))/sys/a1Test/door-1/thing/service/Unlock", "",
        ] {
            #expect(AlinkRRPC.parseService(other) == nil, "\(other)")
        }
        // The call topic is no device system topic: it must not read as a post or a `…_reply`.
        #expect(AlinkTopic.parse(topic) == nil)
        #expect(GatewayRequest.parse(topic) == nil)
        #expect(AlinkRRPC.device(in: "/ext/rrpc/+/sys/a1Sub/sub-1/#")! == ("a1Sub", "sub-1"))
        #expect(AlinkRRPC.device(in: topic)! == ("a1Test", "door-1"))
        for other in [
            "/ext/rrpc/+/sys/+/sub-1/#", "/ext/rrpc/+/sys/a1Sub/#", "/ext/rrpc/+/#", "/ext/rrpc/1/ext/a1Sub/sub-1/x",
            "/sys/a1Sub/sub-1/#",
        ] {
            #expect(AlinkRRPC.device(in: other) == nil, "\(other)")
        }
    }

    @Test func aDeviceAnswersOnlyItsOwnRRPCCalls() throws {
        let policy = try #require(AlinkSignIn(Self.connect(secret: "s"))).policy
        #expect(policy.mayPublish(to: "/ext/rrpc/42/sys/a1Test/door-1/thing/service/Unlock"))
        #expect(policy.maySubscribe(to: "/ext/rrpc/+/sys/a1Test/door-1/thing/service/+"))
        #expect(policy.maySubscribe(to: "/ext/rrpc/+/sys/a1Test/door-1/#"))
        // Another device's calls, and the RRPC tree at large, stay closed.
        #expect(!policy.mayPublish(to: "/ext/rrpc/42/sys/a1Test/door-2/thing/service/Unlock"))
        #expect(!policy.mayPublish(to: "/ext/rrpc/42/sys/a1Other/door-1/thing/service/Unlock"))
        #expect(!policy.maySubscribe(to: "/ext/rrpc/+/sys/a1Test/door-2/#"))
        #expect(!policy.maySubscribe(to: "/ext/rrpc/+/sys/+/+/thing/service/+"))
        #expect(!policy.maySubscribe(to: "/ext/rrpc/+/#"))
        #expect(!policy.maySubscribe(to: "/ext/rrpc/#"))
        // Only answers to service calls are published there.
        #expect(!policy.mayPublish(to: "/ext/rrpc/42/sys/a1Test/door-1/thing/event/property/post"))
        #expect(!policy.mayPublish(to: "/ext/rrpc/42/sys/a1Test/door-1/thing/service/property/set"))
        #expect(!policy.mayPublish(to: "/ext/rrpc/42/a1Test/door-1/user/x"))
        let subDevice = AlinkTopicPolicy(productKey: "a1Sub", deviceName: "sub-1")
        #expect(subDevice.mayPublish(to: "/ext/rrpc/9/sys/a1Sub/sub-1/thing/service/Open"))
        #expect(!subDevice.mayPublish(to: "/ext/rrpc/9/sys/a1Test/door-1/thing/service/Open"))
    }

    @Test func desiredTopicsAreKnown() {
        #expect(AlinkTopic.parse("/sys/a1Test/door-1/thing/property/desired/get")?.kind == .desiredGet)
        #expect(AlinkTopic.parse("/sys/a1Test/door-1/thing/property/desired/delete")?.kind == .desiredDelete)
        #expect(AlinkTopic.parse("/sys/a1Test/door-1/thing/property/desired/get_reply")?.kind == .other)
    }

    @Test func aRequestMayAskForNoReply() throws {
        let silent = try #require(AlinkRequest.parse(Data(#"{"id":"1","sys":{"ack":0},"params":{}}"#.utf8)))
        let asking = try #require(AlinkRequest.parse(Data(#"{"id":"2","sys":{"ack":1},"params":{}}"#.utf8)))
        let plain = try #require(AlinkRequest.parse(Data(#"{"id":"3","params":{}}"#.utf8)))
        #expect(!silent.wantsReply && asking.wantsReply && plain.wantsReply)
    }
}

@Suite("Alink topic policy")
struct AlinkTopicPolicyTests {
    /// The compact policy answers exactly as the same patterns written out for the device.
    @Test func agreesWithItsPatternsWrittenOut() {
        let policy = AlinkTopicPolicy(productKey: "a1Key", deviceName: "door-1")
        let written = policy.written
        var topics: [String] = []
        let devices = [
            "a1Key/door-1", "a1Key/door-2", "a1Other/door-1", "+/door-1", "a1Key/+", "#", "a1Key/door-1/extra",
        ]
        for d in devices {
            let parts = d.split(separator: "/").map(String.init)
            let pk = parts[0]
            let dn = parts.count > 1 ? parts[1] : ""
            topics += [
                "/sys/\(pk)/\(dn)/thing/event/property/post", "/sys/\(pk)/\(dn)", "/sys/\(pk)/\(dn)/#",
                "/sys/\(pk)/\(dn)/+/x", "/sys/\(pk)",
                "/\(pk)/\(dn)/user/get", "/\(pk)/\(dn)/user", "/\(pk)/\(dn)/other",
                "/ota/device/inform/\(pk)/\(dn)", "/ota/device/progress/\(pk)/\(dn)", "/ota/device/upgrade/\(pk)/\(dn)",
                "/ota/device/upgrade/\(pk)/\(dn)/x",
                "/ext/session/\(pk)/\(dn)/combine/login", "/ext/session/\(pk)/\(dn)", "/ext/ntp/\(pk)/\(dn)/request",
                "/ext/ntp/\(pk)/\(dn)/response",
                "/shadow/update/\(pk)/\(dn)", "/shadow/get/\(pk)/\(dn)", "/shadow/get/\(pk)/\(dn)/x",
                "/ext/rrpc/17/sys/\(pk)/\(dn)/thing/service/Unlock", "/ext/rrpc/+/sys/\(pk)/\(dn)/thing/service/+",
                "/ext/rrpc/+/sys/\(pk)/\(dn)/#",
                "/ext/rrpc/17/sys/\(pk)/\(dn)/thing/event/x", "/ext/rrpc/#",
            ]
        }
        topics += [
            "", "/", "//", "#", "+", "/#", "/+", "sys/a1Key/door-1/x", "/SYS/a1Key/door-1/x", "/sys/a1Key/door-1/",
            "/sys/a1Key/door-1//",
        ]
        for topic in topics {
            #expect(policy.mayPublish(to: topic) == written.mayPublish(to: topic), "publish \(topic)")
            #expect(policy.maySubscribe(to: topic) == written.maySubscribe(to: topic), "subscribe \(topic)")
        }
        #expect(policy.mayPublish(to: "/sys/a1Key/door-1/thing/event/property/post"))
        #expect(!policy.mayPublish(to: "/sys/a1Key/door-2/thing/event/property/post"))
        #expect(policy.maySubscribe(to: "/sys/a1Key/door-1/#") && !policy.maySubscribe(to: "/sys/a1Key/+/#"))
    }
}
