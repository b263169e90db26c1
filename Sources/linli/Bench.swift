import ArgumentParser
import Foundation
import LinliBench
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliLinkage
import LinliMQTT
import LinliMessaging
import LinliStorage
import LinliThings
import LinliWorkOrders
import Logging

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generators that measure a running Linli.",
        subcommands: [BenchMQTT.self, BenchRelay.self, BenchTelemetry.self])
}

/// `linli bench mqtt`: simulated devices against the MQTT broker. Devices are registered straight
/// in the store (their secrets stay in this process's memory), sign in with Alink and post
/// properties at a paced total rate; `--plain` drives any broker with anonymous clients instead.
struct BenchMQTT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqtt",
        abstract:
            "Drive N simulated devices posting properties over MQTT; report throughput, publish → PUBACK latency and the server's memory.",
        discussion: """
            Prints a table, then one JSON line (the last line of standard output). Progress goes to standard error.
            Without --plain the devices are `bench-{run}-{i}` of an `environment_sensor` product, created (or reused) in the data folder.
            """
    )

    @OptionGroup var storage: StorageOptions
    @Option(help: "The broker, host:port.") var mqtt = "127.0.0.1:1883"
    @Option(help: "Simulated devices, one connection each.") var devices = 1_000
    @Option(help: "Property posts per second, all devices together.") var rate: Double = 10_000
    @Option(help: "QoS of the posts: 0 or 1.") var qos = 1
    @Option(help: "Seconds measured, after the warm-up.") var duration: Double = 30
    @Option(help: "Seconds of load before measuring.") var warmup: Double = 5
    @Flag(
        name: .customLong("connect-only"),
        help: "Open the connections and hold them without publishing; report how many stayed.")
    var connectOnly = false
    @Option(help: "With --connect-only: seconds to hold the connections.") var hold: Double = 30
    @Option(help: "QoS 1 posts per device awaiting PUBACK at most.") var inflight = 16
    @Option(name: .customLong("connect-concurrency"), help: "Connections being opened at once.")
    var connectConcurrency = 64
    @Option(name: .customLong("keep-alive"), help: "MQTT keep-alive in seconds (idle clients ping at half of it).")
    var keepAlive = 60
    @Option(name: .customLong("server-pid"), help: "The server's process id: its memory and CPU are read from /proc.")
    var serverPid: Int32?
    @Option(
        name: .customLong("metrics-url"), help: "The server's Prometheus endpoint, e.g. http://127.0.0.1:8080/metrics.")
    var metricsURL: String?
    @Flag(help: "Anonymous clients posting to bench/{i}, for any broker (Mosquitto); no data folder needed.")
    var plain = false
    @Option(
        name: .customLong("subscribe-filter"),
        help: "Add one subscriber on this filter and count what is relayed to it.") var subscribeFilter: String?
    @Option(
        name: .customLong("subscribe-username"),
        help: "Integration account for the subscriber on Linli (password in LINLI_BENCH_SUBSCRIBE_PASSWORD).")
    var subscribeUsername: String?
    @Option(
        name: .customLong("run-id"),
        help: "Names the devices bench-{run}-{i}; reuse one to reuse its devices. Default: random.") var runId: String?
    @Option(
        name: .customLong("first-device"),
        help: "Index of the first device, to split one run's devices over several generators.") var firstDevice = 0
    @Flag(name: .customLong("provision-only"), help: "Create (or find) the devices, then exit without connecting.")
    var provisionOnly = false
    @Option(help: "Community of the bench product, when the database holds several.") var community: String?

    static let subscribePasswordVariable = "LINLI_BENCH_SUBSCRIBE_PASSWORD"

    func settings() throws -> MQTTBenchSettings {
        var s = MQTTBenchSettings()
        s.endpoint = try Endpoint.parse(mqtt)
        guard let q = QoS(rawValue: UInt8(clamping: max(0, qos))), qos <= 1 else {
            throw BenchSettingsError("--qos must be 0 or 1, got \(qos)")
        }
        guard (10...65_535).contains(keepAlive) else {
            throw BenchSettingsError("--keep-alive must be from 10 to 65535 seconds, got \(keepAlive)")
        }
        s.qos = q
        s.devices = devices
        s.rate = rate
        s.duration = duration
        s.warmup = warmup
        s.connectOnly = connectOnly
        s.hold = hold
        s.inflight = inflight
        s.connectConcurrency = connectConcurrency
        s.keepAlive = UInt16(keepAlive)
        s.subscribeFilter = subscribeFilter
        s.serverPid = serverPid
        s.metricsURL = metricsURL
        try s.validate()
        return s
    }

    func validate() throws {
        do { _ = try settings() } catch let error as BenchSettingsError { throw ValidationError(error.description) }
        if let runId,
            runId.isEmpty || runId.count > 8 || !runId.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber) })
        {
            throw ValidationError("--run-id must be 1 to 8 lowercase letters or digits, got '\(runId)'")
        }
        if firstDevice < 0 || firstDevice > 9_000_000 {
            throw ValidationError("--first-device must be from 0 to 9000000, got \(firstDevice)")
        }
        if plain, provisionOnly {
            throw ValidationError("--provision-only registers Alink devices; --plain clients need none")
        }
        if plain, subscribeUsername != nil {
            throw ValidationError("--subscribe-username is for Linli; --plain subscribes anonymously")
        }
        if !plain, subscribeFilter != nil {
            guard subscribeUsername != nil, ProcessInfo.processInfo.environment[Self.subscribePasswordVariable] != nil
            else {
                throw ValidationError(
                    "Linli admits no anonymous subscriber: give --subscribe-username (an integration account) and its password in \(Self.subscribePasswordVariable)"
                )
            }
        }
        if let serverPid, !FileManager.default.fileExists(atPath: "/proc/\(serverPid)/status") {
            throw ValidationError("--server-pid \(serverPid): no such process (or no /proc to read it from)")
        }
    }

    func run() async throws {
        let settings = try settings()
        let run = runId ?? String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let note: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        if !connectOnly, settings.perDeviceRate > MQTTBenchSettings.brokerPerClientLimit, !plain {
            note(
                "note: \(Int(settings.perDeviceRate)) posts/s per device is above the \(Int(MQTTBenchSettings.brokerPerClientLimit))/s Linli allows one client; expect disconnects"
            )
        }
        let clients: [BenchIdentity]
        var subscriber: BenchIdentity? = nil
        if plain {
            clients = (firstDevice..<firstDevice + devices).map { .plain(clientId: "bench-\(run)-\($0)", index: $0) }
            if subscribeFilter != nil { subscriber = .plain(clientId: "bench-\(run)-sub", index: -1) }
        } else {
            note("run \(run): provisioning \(devices) devices")
            clients = try await storage.withStore { store in
                try await provision(store, run: run, progress: note)
            }
            if provisionOnly {
                say("provisioned \(clients.count) devices bench-\(run)-\(firstDevice)…\(firstDevice + devices - 1)")
                return
            }
            if let subscribeUsername, let password = ProcessInfo.processInfo.environment[Self.subscribePasswordVariable]
            {
                subscriber = .account(clientId: "bench-\(run)-sub", username: subscribeUsername, password: password)
            }
        }
        let bench = MQTTBench(
            settings: settings, mode: plain ? "plain" : "alink", clients: clients, subscriber: subscriber,
            progress: note)
        let result: MQTTBenchResult
        do { result = try await bench.run() } catch let error as BenchSettingsError {
            throw CLIError(error.description)
        }
        say(result.table())
        say(result.jsonLine())
    }

    /// The product every bench device belongs to: one per database, found again by its key.
    static let productKey = "a1benchmark"
    static let library = "environment_sensor"

    /// Creates the product and the devices this run needs, or finds them from an earlier run with
    /// the same run id (their secrets decrypted from the store). Returns their sign-in triples.
    func provision(_ store: Store, run: String, progress: @Sendable (String) -> Void) async throws -> [BenchIdentity] {
        let product: Product
        if let existing = try await store.product(key: Self.productKey) {
            guard existing.libraryKey == Self.library else {
                throw CLIError(
                    "product \(Self.productKey) exists but is not a \(Self.library); the bench needs its own")
            }
            product = existing
        } else {
            guard var model = ProductLibrary.entry(Self.library)?.model else {
                throw CLIError("the product library has no \(Self.library)")
            }
            model.productKey = Self.productKey
            let home = try await resolveCommunity(community, store: store)
            let created = Product(
                communityId: home.id, productKey: Self.productKey, name: "Linli bench environment sensor",
                libraryKey: Self.library,
                tslJson: String(decoding: model.tsl.serialized(), as: UTF8.self))
            try await store.createProduct(created, actor: cli)
            product = created
        }
        var identities: [BenchIdentity] = []
        identities.reserveCapacity(devices)
        var created = 0
        let started = ContinuousClock.now
        for index in firstDevice..<firstDevice + devices {
            let name = "bench-\(run)-\(index)"
            let secret: String
            if let device = try await store.device(productKey: product.productKey, deviceName: name) {
                secret = try store.deviceSecret(device)
            } else {
                secret = try await store.registerDevice(product: product, deviceName: name, actor: cli).secret
                created += 1
            }
            identities.append(.alink(productKey: product.productKey, deviceName: name, secret: secret))
            if identities.count % 5_000 == 0 { progress("… \(identities.count) of \(devices) devices ready") }
        }
        let seconds = (ContinuousClock.now - started).components.seconds
        progress("devices ready: \(created) registered, \(devices - created) reused, in \(seconds) s")
        return identities
    }
}

/// `linli bench telemetry`: the telemetry writer alone, without MQTT: how many property posts a
/// second it can make durable when it is never starved of work. The broker's own CPU (decoding,
/// validating, replying) is left out, so this is the ceiling storage sets, not what devices see.
struct BenchTelemetry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "telemetry",
        abstract:
            "Feed the telemetry writer property posts as fast as it commits them; report posts/s and commit times.",
        discussion:
            "Writes into the data folder's telemetry store (give it a scratch folder). Devices are made-up ids, so the registry is not touched."
    )

    @OptionGroup var storage: StorageOptions
    @Option(help: "Simulated devices; each post carries two values, as the MQTT bench's do.") var devices = 1_000
    @Option(help: "Posts in all.") var posts = 300_000
    @Option(help: "Posts enqueued and not yet committed at most (the MQTT bench has 16 per device).") var inflight =
        16_000
    @Option(
        name: .customLong("merge-rows"),
        help: "Values the writer gathers in its log before merging them into blocks per series.") var mergeRows =
        100_000

    func run() async throws {
        let devices = self.devices
        let posts = self.posts
        let inflight = self.inflight
        let mergeRows = self.mergeRows
        guard devices > 0, posts > 0, inflight > 0 else {
            throw ValidationError("--devices, --posts and --inflight must be positive")
        }
        try await storage.withStore { store in
            let writer = TelemetryWriter(store: store, logger: Logger(label: "bench"), mergeRows: mergeRows)
            let ids = (0..<devices).map { "bench-telemetry-\($0)" }
            let chunk = 500
            var waiting: [TelemetryReceipt] = []
            let started = ContinuousClock.now
            var base = nowMillis()
            for i in 0..<posts {
                if i % devices == 0 { base += 1 }
                let tenths = 150 + i % 100
                let values = [
                    ReportedValue(
                        identifier: "CurrentHumidity", json: String(30 + i % 40), number: Double(30 + i % 40),
                        time: base, plainNumber: true),
                    ReportedValue(
                        identifier: "CurrentTemperature", json: ReportedValue.text(of: Double(tenths) / 10),
                        number: Double(tenths) / 10, time: base, plainNumber: true),
                ]
                let receipt = writer.enqueue(
                    DeviceReport(
                        deviceId: ids[i % devices], communityId: "bench", productKey: "a1benchmark",
                        deviceName: "d\(i % devices)", receivedAt: base, content: .properties(values)))
                // Reports commit in order, so waiting for every 500th waits for those before it.
                if i % chunk == chunk - 1 || i == posts - 1 { waiting.append(receipt) }
                if waiting.count * chunk > inflight { try await waiting.removeFirst().wait() }
            }
            for receipt in waiting { try await receipt.wait() }
            let elapsed = ContinuousClock.now - started
            await writer.idle()
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            say(
                "telemetry writer: \(posts) posts from \(devices) devices in \(String(format: "%.2f", seconds)) s: \(Int(Double(posts) / seconds)) posts/s"
            )
        }
    }
}

/// `linli bench relay`: one publisher and persistent QoS 1 subscribers on any broker, online and
/// offline-then-back, or idle connections for the memory each holds.
struct BenchRelay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract:
            "Relay from one publisher to persistent QoS 1 subscribers (online, offline then back), or hold idle connections; report rates, latency and the server's memory.",
        discussion: """
            Prints one JSON line per phase on standard output; progress on standard error. The password of
            --username is read from LINLI_BENCH_PASSWORD. On Linli, give the account `relay/#` to publish and
            subscribe, and a publish rate above the offered one (LINLI_MQTT_PUBLISH_RATE).
            """
    )

    @Option(help: "The broker, host:port.") var mqtt = "127.0.0.1:1883"
    @Option(help: "Integration account (none: anonymous, for Mosquitto).") var username: String?
    @Option(help: "MQTT protocol: 4 (3.1.1) or 5.") var protocolLevel = 4
    @Option(help: "Phases, comma-separated: online, offline, idle, connect.") var phases = "online,offline"
    @Option(help: "Persistent QoS 1 subscribers.") var subscribers = 10
    @Option(help: "online: messages per second offered.") var rate: Double = 5_000
    @Option(help: "online: seconds measured, after the warm-up.") var duration: Double = 20
    @Option(help: "online: seconds of load before measuring.") var warmup: Double = 3
    @Option(help: "offline: messages published while the subscribers are away.") var messages = 10_000
    @Option(help: "The publisher's QoS 1 messages awaiting PUBACK at most.") var inflight = 256
    @Option(help: "Bytes of each message (at least 16: its send time and number).") var payload = 64
    @Option(help: "idle: connections held; connect: sign-ins of --username.") var connections = 1_000
    @Option(name: .customLong("cold-accounts"), help: "connect: accounts {username}-{i} signing in once each first.")
    var coldAccounts = 0
    @Option(help: "connect: sign-ins at once.") var concurrency = 16
    @Option(help: "idle: seconds held before the memory is read.") var hold: Double = 10
    @Option(name: .customLong("server-pid"), help: "The server's process id: its memory is read from /proc.")
    var serverPid: Int32?
    @Option(name: .customLong("run-id"), help: "Prefix of the client ids.") var runId = "relay"

    func run() async throws {
        var s = RelaySettings()
        let endpoint = try Endpoint.parse(mqtt)
        s.host = endpoint.host
        s.port = endpoint.port
        s.username = username
        s.password = ProcessInfo.processInfo.environment["LINLI_BENCH_PASSWORD"]
        guard let version = MQTTVersion(rawValue: UInt8(clamping: protocolLevel)), version != .v3_1 else {
            throw ValidationError("--protocol-level is 4 (3.1.1) or 5")
        }
        guard subscribers >= 1, messages >= 1, inflight >= 1, connections >= 1, payload >= 16, coldAccounts >= 0,
            concurrency >= 1
        else {
            throw ValidationError(
                "--subscribers, --messages, --inflight, --connections and --concurrency are at least 1, --payload 16, --cold-accounts 0"
            )
        }
        s.version = version
        s.subscribers = subscribers
        s.rate = rate
        s.duration = duration
        s.warmup = warmup
        s.messages = messages
        s.inflight = inflight
        s.payloadBytes = payload
        s.connections = connections
        s.hold = hold
        s.serverPid = serverPid
        s.runId = runId
        s.coldAccounts = coldAccounts
        s.concurrency = concurrency
        let bench = RelayBench(settings: s) { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for phase in phases.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            let result: RelayResult
            switch phase {
            case "online": result = try await bench.online()
            case "offline": result = try await bench.offline()
            case "idle": result = try await bench.idle()
            case "connect": result = try await bench.connects()
            default: throw ValidationError("unknown phase \(phase): online, offline, idle or connect")
            }
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        }
    }
}
