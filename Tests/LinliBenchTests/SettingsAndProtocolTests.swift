import Foundation
import LinliAlink
import LinliMQTT
import LinliThings
import NIOCore
import Testing

@testable import LinliBench

@Suite("Bench settings")
struct BenchSettingsTests {
    @Test func endpointsParse() throws {
        #expect(try Endpoint.parse("127.0.0.1:1883") == Endpoint(host: "127.0.0.1", port: 1883))
        #expect(try Endpoint.parse("[::1]:18830") == Endpoint(host: "::1", port: 18830))
        #expect(try Endpoint.parse("localhost:1").description == "localhost:1")
        for bad in ["127.0.0.1", ":1883", "host:0", "host:65536", "host:mqtt", ""] {
            #expect(throws: BenchSettingsError.self, "\(bad)") { try Endpoint.parse(bad) }
        }
    }

    @Test func defaultsAreValid() throws {
        try MQTTBenchSettings().validate()
    }

    @Test func badValuesAreRefusedWithAMessageNamingTheOption() {
        let cases: [(String, (inout MQTTBenchSettings) -> Void)] = [
            ("--devices", { $0.devices = 0 }),
            ("--rate", { $0.rate = 0 }),
            ("--rate", { $0.rate = .infinity }),
            ("--qos", { $0.qos = .exactlyOnce }),
            ("--duration", { $0.duration = -1 }),
            ("--warmup", { $0.warmup = -0.5 }),
            ("--inflight", { $0.inflight = 0 }),
            ("--inflight", { $0.inflight = 5_000 }),
            ("--connect-concurrency", { $0.connectConcurrency = 0 }),
            ("--subscribe-filter", { $0.subscribeFilter = "bench/#/x" }),
            ("--server-pid", { $0.serverPid = -3 }),
            ("--metrics-url", { $0.metricsURL = "https://127.0.0.1/metrics" }),
            (
                "--hold",
                {
                    $0.connectOnly = true
                    $0.hold = 0
                }
            ),
        ]
        for (option, change) in cases {
            var settings = MQTTBenchSettings()
            change(&settings)
            do {
                try settings.validate()
                Issue.record("\(option): accepted")
            } catch {
                #expect(error.description.contains(option), "\(error.description)")
            }
        }
    }

    @Test func connectOnlyIgnoresTheRateSettings() throws {
        var settings = MQTTBenchSettings()
        settings.connectOnly = true
        settings.rate = 0
        settings.duration = 0
        try settings.validate()
    }

    @Test func metricsURLsParse() throws {
        let t = try HTTPTarget.parse("http://127.0.0.1:8080/metrics")
        #expect(t.endpoint == Endpoint(host: "127.0.0.1", port: 8080))
        #expect(t.path == "/metrics")
        #expect(try HTTPTarget.parse("http://example").endpoint.port == 80)
        #expect(try HTTPTarget.parse("http://example").path == "/")
    }
}

@Suite("Bench devices speak Alink")
struct BenchIdentityTests {
    @Test func theSignInVerifiesWithTheServersOwnCheck() throws {
        let identity = BenchIdentity.alink(productKey: "a1benchmark", deviceName: "bench-x-7", secret: "s3cret")
        let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
        let connect = identity.connect(keepAlive: 60, nowMillis: nowMillis)
        #expect(connect.clientId == "bench-x-7|securemode=3,signmethod=hmacsha256,timestamp=\(nowMillis)|")
        #expect(connect.username == "bench-x-7&a1benchmark")
        let signIn = try #require(AlinkSignIn(connect))
        #expect(signIn.secureMode == 3)
        #expect(signIn.verify(secret: "s3cret"))
        #expect(!signIn.verify(secret: "other"))
        #expect(signIn.isFresh())
        #expect(signIn.policy.mayPublish(to: identity.topic))
        #expect(identity.topic == "/sys/a1benchmark/bench-x-7/thing/event/property/post")
    }

    @Test func plainClientsAreAnonymous() {
        let connect = BenchIdentity.plain(clientId: "bench-x-3", index: 3).connect(keepAlive: 30, nowMillis: 0)
        #expect(connect.username == nil && connect.password == nil)
        #expect(BenchIdentity.plain(clientId: "bench-x-3", index: 3).topic == "bench/3")
    }

    @Test("posts are Alink requests the environment sensor accepts", arguments: [UInt64(0), 1, 57, 99, 123_456_789])
    func postsAreValid(sequence: UInt64) throws {
        var buffer = ByteBuffer()
        PropertyPost.write(sequence: sequence, into: &buffer)
        let payload = Data(buffer.readableBytesView)
        let request = try #require(AlinkRequest.parse(payload))
        #expect(request.id == String(sequence))
        #expect(request.method == "thing.event.property.post")
        let model = try #require(ProductLibrary.entry("environment_sensor")).model
        #expect(model.validateProperties(request.params).isEmpty, "\(String(decoding: payload, as: UTF8.self))")
    }

    @Test func successRepliesAreRecognised() {
        let ok = AlinkCode.reply(id: "5", code: 200, message: "success")
        let bad = AlinkCode.reply(id: "5", code: AlinkCode.invalidValue, message: "CurrentTemperature is above 120")
        #expect(PropertyPost.isSuccessReply(ByteBuffer(bytes: ok)))
        #expect(!PropertyPost.isSuccessReply(ByteBuffer(bytes: bad)))
        #expect(!PropertyPost.isSuccessReply(ByteBuffer(string: "{\"code\":2001}")))
        #expect(!PropertyPost.isSuccessReply(ByteBuffer(string: "")))
        #expect(PropertyPost.isSuccessReply(ByteBuffer(bytes: AlinkCode.success(id: "5"))))
        // The code at the very end.
        #expect(PropertyPost.isSuccessReply(ByteBuffer(string: "{\"id\":\"1\",\"code\":200")))
    }
}

@Suite("Probes and report")
struct ProbeTests {
    @Test func procStatusAndStatParse() {
        let status = "Name:\tlinli\nVmPeak:\t 999 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t4\n"
        let memory = ProcessProbe.parseStatus(status)
        #expect(memory?.rss == 102_400 && memory?.peak == 204_800)
        #expect(ProcessProbe.parseStatus("Name: x\n") == nil)
        // A command name with spaces and a parenthesis; utime 250, stime 50.
        let stat = "4242 (linli (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000 250"
        #expect(ProcessProbe.parseStatCPUTicks(stat) == 300)
        let limits =
            "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n"
        #expect(ProcessProbe.parseOpenFilesLimit(limits) == 20_000)
    }

    @Test func httpResponsesParsePlainAndChunked() throws {
        let plain = try HTTPGet.parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        #expect(plain.status == 200 && plain.body == "hello")
        let chunked = try HTTPGet.parseResponse(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")
        #expect(chunked.body == "hello, world")
        #expect(try HTTPGet.parseResponse("HTTP/1.1 404 Not Found\r\n\r\n").status == 404)
        #expect(throws: (any Error).self) { try HTTPGet.parseResponse("garbage") }
    }

    static let histogramText = """
        # HELP linli_telemetry_commit_seconds Time to commit a batch
        # TYPE linli_telemetry_commit_seconds histogram
        linli_telemetry_commit_seconds_bucket{le="0.001"} 10
        linli_telemetry_commit_seconds_bucket{le="0.002"} 30
        linli_telemetry_commit_seconds_bucket{le="0.005"} 40
        linli_telemetry_commit_seconds_bucket{le="+Inf"} 40
        linli_telemetry_commit_seconds_sum 0.06
        linli_telemetry_commit_seconds_count 40
        linli_telemetry_commit_seconds_other 3
        http_requests_total 12
        """

    @Test func histogramQuantilesInterpolateWithinBuckets() throws {
        let s = try #require(PrometheusSeries.parse("linli_telemetry_commit_seconds", from: Self.histogramText))
        #expect(s.count == 40 && s.sum == 0.06)
        #expect(s.buckets.count == 4)
        // Rank 20 of 40 lies halfway through the 0.001–0.002 bucket (counts 10 → 30).
        #expect(abs(s.estimatedQuantile(0.5)! - 0.0015) < 1e-12)
        #expect(abs(s.estimatedQuantile(0.25)! - 0.001) < 1e-12)  // rank 10: the top of the first bucket
        #expect(abs(s.estimatedQuantile(0.375)! - 0.00125) < 1e-12)
        #expect(abs(s.estimatedQuantile(1.0)! - 0.005) < 1e-12)

        let earlier = try #require(
            PrometheusSeries.parse(
                "linli_telemetry_commit_seconds",
                from: """
                    linli_telemetry_commit_seconds_bucket{le="0.001"} 10
                    linli_telemetry_commit_seconds_bucket{le="0.002"} 10
                    linli_telemetry_commit_seconds_bucket{le="0.005"} 10
                    linli_telemetry_commit_seconds_bucket{le="+Inf"} 10
                    linli_telemetry_commit_seconds_sum 0.005
                    linli_telemetry_commit_seconds_count 10
                    """))
        let window = s.since(earlier)
        #expect(window.count == 30)
        #expect(window.buckets[0.001] == 0)
        // Of the 30 commits in the window, 20 took 1–2 ms and 10 took 2–5 ms.
        #expect(abs(window.estimatedQuantile(0.5)! - 0.00175) < 1e-12)
    }

    @Test func summariesAndAbsenceAreReported() {
        let summary = """
            linli_telemetry_commit_seconds{quantile="0.5"} 0.0012
            linli_telemetry_commit_seconds{quantile="0.99"} 0.0041
            linli_telemetry_commit_seconds_sum 1.5
            linli_telemetry_commit_seconds_count 1000
            """
        let times = MQTTBench.commitTimes(before: nil, after: .success(summary))
        #expect(times.series == "summary")
        #expect(abs(times.p50Ms! - 1.2) < 1e-9 && abs(times.p99Ms! - 4.1) < 1e-9 && times.p90Ms == nil)
        #expect(abs(times.meanMs! - 1.5) < 1e-9)
        #expect(MQTTBench.commitTimes(before: nil, after: .success("http_requests_total 3\n")).series == "absent")
        #expect(MQTTBench.commitTimes(before: nil, after: .success(Self.histogramText)).series == "histogram")
    }

    @Test func theReportIsOneJSONLineAndATable() throws {
        var result = MQTTBenchResult(
            mode: "alink", kind: "throughput", qos: 1, devices: 1_000, connected: 1_000, connectSeconds: 1.5,
            connectFailures: 0, connectFailureReasons: [:], rejectedReplies: 0, notSent: 0, unackedAtEnd: 0,
            protocolErrors: 0, errors: 0, disconnects: 0)
        result.ackedPerSecond = 51_234.4
        result.telemetryCommit = .init(series: "absent")
        let line = result.jsonLine()
        #expect(!line.contains("\n"))
        let decoded = try JSONDecoder().decode(MQTTBenchResult.self, from: Data(line.utf8))
        #expect(decoded == result)
        #expect(result.table().contains("51,234 /s"))
        #expect(result.table().contains("linli_telemetry_commit_seconds: absent"))
        #expect(MQTTBenchResult.thousands(1_234_567) == "1,234,567")
        #expect(MQTTBenchResult.thousands(999) == "999")
    }
}
