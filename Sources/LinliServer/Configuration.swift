import Foundation
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliLinkage
import LinliMQTT
import LinliMessaging
import LinliStorage
import LinliWorkOrders
import Logging

/// Settings for a Linli node, from flags, then environment (`LINLI_…`), then an optional config
/// file of `key = value` lines, then defaults. Every value is checked at start; a wrong one stops
/// start-up with a message naming it.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    public var dataDirectory: String = "./linli-data"
    public var postgresURL: String? = nil
    public var logLevel: Logger.Level = .info
    public var sessionHours: Int = 12
    public var secureCookies: Bool = false
    /// Seconds an HTTP connection may wait between requests, or for the rest of a request's
    /// headers, and seconds a request's body may pause, before the connection is closed: a client
    /// that stops half-way must not hold a connection and a handler for ever.
    public var httpIdleSeconds: Int = 60
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed; from any
    /// other peer the header is ignored.
    public var trustedProxies: [IPAddressRange] = []
    /// HTTP sockets at most (0: a fifth of the open-file limit, at most 4,096); the oldest waiting
    /// one is closed for a new one, and the broker's socket budget leaves these free.
    public var httpMaxConnections: Int = 0
    /// HTTP sockets one address (an IPv6 /64) may hold; a trusted proxy is not capped.
    public var httpConnectionsPerAddress: Int = 256
    /// Seconds a new connection has to send a whole request head, whatever it sends meanwhile.
    public var httpHeaderSeconds: Int = 10
    /// Bytes a second a request body must average, after its first 10 s, or the connection closes.
    public var httpMinBodyRate: Int = 1_024

    /// The HTTP socket cap in effect, from `httpMaxConnections` and the open-file limit.
    public func httpSocketCap(fileLimit: Int?) -> Int {
        if httpMaxConnections > 0 { return httpMaxConnections }
        return min(4_096, max(64, (fileLimit ?? 1_024) / 5))
    }
    /// The embedded MQTT broker's address; nil when turned off (`mqtt = off`).
    public var mqttHost: String? = "127.0.0.1"
    public var mqttPort: Int = 1883
    /// The largest MQTT packet the broker takes, in KiB; a larger one closes its connection. 256
    /// covers every device post; camera snapshots (Frigate's, say) may need more.
    public var mqttMaxPacketKiB: Int = 256
    /// Signed-in MQTT clients at most; one more is answered CONNACK 3 (server unavailable).
    public var mqttMaxConnections: Int = 50_000
    /// PUBLISH packets a second one client may send, a burst of as many allowed; a client above it
    /// is disconnected. A bridge (zigbee2mqtt for a whole building) may need more than a device.
    public var mqttPublishRate: Int = 1_000
    /// QoS 1 and 2 messages kept for a client beyond those in flight, and for a persistent session
    /// while it is away; when full, newer ones are dropped, counted and logged.
    public var mqttQueue: Int = 10_000
    /// How long a persistent session (clean session 0) is kept while its client is away, in
    /// seconds (`mqtt-session-expiry = 7d`).
    public var mqttSessionExpirySeconds: Int = 7 * 86_400
    /// Sockets one address (an IPv6 /64) may hold open before sending CONNECT; the oldest is
    /// closed when another opens. Devices behind one NAT that reconnect together count here.
    public var mqttPendingPerAddress: Int = 1_000
    /// The broker's settings from these: its address, limits and TLS listener.
    public var mqttBroker: MQTTBrokerConfiguration? {
        mqttHost.map {
            MQTTBrokerConfiguration(
                host: $0, port: mqttPort, tls: mqttTLS, limits: MQTTLimits(maxPacketSize: mqttMaxPacketKiB * 1024),
                maxConnections: mqttMaxConnections, pendingPerAddress: mqttPendingPerAddress, queueLimit: mqttQueue,
                sessionExpiry: .seconds(mqttSessionExpirySeconds), maxPublishesPerSecond: mqttPublishRate,
                // The HTTP server's sockets (and its health-check reserve) are not the broker's to take.
                reservedFileDescriptors: 128 + httpSocketCap(fileLimit: OpenFileLimit.current()?.soft) + 16)
        }
    }
    /// Days of telemetry history kept; older values are deleted hourly.
    public var telemetryDays: Int = 30
    /// The broker's TLS listener, its certificate loaded and checked; nil without a certificate
    /// or with `mqtt-tls = off`.
    public var mqttTLS: MQTTTLSListener? = nil
    /// SMS gateway and SMTP relay for notifications people ask to get outside Linli.
    public var outbound = OutboundSettings()
    /// The address devices reach Linli's HTTP at (`device-url`), for firmware downloads; by
    /// default the HTTP address itself, unless that is every interface (0.0.0.0), which names no
    /// address a device could use.
    public var deviceURL: String? = nil
    public var downloadBase: String? {
        if let deviceURL { return deviceURL }
        guard !["0.0.0.0", "::", "[::]"].contains(host) else { return nil }
        return "http://\(host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host):\(port)"
    }

    public init() {}

    public struct Invalid: Error, CustomStringConvertible {
        public var key: String
        public var reason: String
        public var description: String { "configuration: \(key) \(reason)" }
    }

    /// The keys a file or the environment may set (environment: `LINLI_` + upper-cased key with `_`).
    public static let keys = [
        "http", "data", "postgres-url", "log-level", "session-hours", "secure-cookies", "http-idle-seconds",
        "trusted-proxies", "http-max-connections", "http-connections-per-address", "http-header-seconds",
        "http-min-body-rate", "mqtt",
        "mqtt-max-packet-kib", "mqtt-max-connections",
        "mqtt-publish-rate", "mqtt-queue", "mqtt-session-expiry", "mqtt-pending-per-address", "mqtt-tls",
        "mqtt-tls-cert", "mqtt-tls-key",
        "telemetry-days",
        "smtp", "mail-from", "sms-webhook", "sms-secret", "webhook-allow", "device-url",
    ]

    /// Builds the configuration from layered sources; `flags` wins over `environment` over `file`.
    public static func resolve(flags: [String: String], environment: [String: String], configFile: String?) throws
        -> ServerConfiguration
    {
        var values: [String: (String, String)] = [:]  // key -> (value, where it came from)
        if let configFile {
            guard let text = try? String(contentsOfFile: configFile, encoding: .utf8) else {
                throw Invalid(key: "config", reason: "file \(configFile) cannot be read")
            }
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                let parts = trimmed.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, keys.contains(parts[0]) else {
                    throw Invalid(
                        key: "config",
                        reason:
                            "line \(number + 1) of \(configFile) is not `key = value` with a known key (\(keys.joined(separator: ", ")))"
                    )
                }
                values[parts[0]] = (parts[1], configFile)
            }
        }
        for key in keys {
            let name = "LINLI_" + key.uppercased().replacingOccurrences(of: "-", with: "_")
            if let value = environment[name], !value.isEmpty { values[key] = (value, name) }
        }
        for (key, value) in flags { values[key] = (value, "--" + key) }

        var config = ServerConfiguration()
        if let (http, source) = values["http"] {
            (config.host, config.port) = try address(http, source: source, example: "127.0.0.1:8080")
        }
        if let (mqtt, source) = values["mqtt"] {
            if mqtt.lowercased() == "off" {
                config.mqttHost = nil
            } else {
                (config.mqttHost, config.mqttPort) = try address(
                    mqtt, source: source, example: "127.0.0.1:1883, or off")
            }
        }
        config.mqttTLS = try mqttTLS(values)
        if let tls = config.mqttTLS, config.mqttHost == tls.host, config.mqttPort == tls.port, tls.port != 0 {
            throw Invalid(
                key: values["mqtt-tls"]?.1 ?? values["mqtt"]?.1 ?? "mqtt",
                reason: "must not be the same address as mqtt (\(tls.host):\(tls.port))")
        }
        if let (data, _) = values["data"] { config.dataDirectory = data }
        if let (url, source) = values["postgres-url"] {
            do { _ = try PostgresURL.configuration(url) } catch {
                throw Invalid(key: source, reason: "must look like postgres://user:password@host:5432/database")
            }
            config.postgresURL = url
        }
        if let (level, source) = values["log-level"] {
            guard
                let parsed = Logger.Level(rawValue: level.lowercased())
                    ?? (level.lowercased() == "warn" ? .warning : nil)
            else {
                throw Invalid(
                    key: source,
                    reason: "must be one of trace, debug, info, notice, warning, error, critical (got \(level))")
            }
            config.logLevel = parsed
        }
        /// A whole number within its range, or nil when the setting is not given.
        func whole(_ key: String, _ range: ClosedRange<Int>, of unit: String) throws -> Int? {
            guard let (text, source) = values[key] else { return nil }
            guard let n = Int(text), range.contains(n) else {
                throw Invalid(
                    key: source,
                    reason: "must be a whole number of \(unit) from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        if let (secure, source) = values["secure-cookies"] {
            guard let b = ["true": true, "false": false][secure.lowercased()] else {
                throw Invalid(key: source, reason: "must be true or false")
            }
            config.secureCookies = b
        }
        config.sessionHours = try whole("session-hours", 1...720, of: "hours") ?? config.sessionHours
        config.mqttMaxPacketKiB = try whole("mqtt-max-packet-kib", 1...16_384, of: "KiB") ?? config.mqttMaxPacketKiB
        config.mqttMaxConnections =
            try whole("mqtt-max-connections", 1...1_000_000, of: "clients") ?? config.mqttMaxConnections
        config.mqttPublishRate =
            try whole("mqtt-publish-rate", 1...1_000_000, of: "messages a second") ?? config.mqttPublishRate
        config.mqttQueue = try whole("mqtt-queue", 1...1_000_000, of: "messages") ?? config.mqttQueue
        config.mqttPendingPerAddress =
            try whole("mqtt-pending-per-address", 1...1_000_000, of: "sockets") ?? config.mqttPendingPerAddress
        if let (text, source) = values["mqtt-session-expiry"] {
            // As Mosquitto's `persistent_client_expiration`: a number and a unit.
            let units: [Character: Int] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800]
            guard let unit = text.last.flatMap({ units[$0] }), let n = Int(text.dropLast()), n > 0,
                n * unit <= 10 * 365 * 86_400
            else {
                throw Invalid(
                    key: source,
                    reason: "must be a number and a unit (s, m, h, d or w), such as 7d or 12h, up to 10 years")
            }
            config.mqttSessionExpirySeconds = n * unit
        }
        config.httpIdleSeconds = try whole("http-idle-seconds", 1...3600, of: "seconds") ?? config.httpIdleSeconds
        config.httpMaxConnections =
            try whole("http-max-connections", 0...1_000_000, of: "sockets") ?? config.httpMaxConnections
        config.httpConnectionsPerAddress =
            try whole("http-connections-per-address", 1...1_000_000, of: "sockets") ?? config.httpConnectionsPerAddress
        config.httpHeaderSeconds = try whole("http-header-seconds", 1...600, of: "seconds") ?? config.httpHeaderSeconds
        config.httpMinBodyRate =
            try whole("http-min-body-rate", 0...100_000_000, of: "bytes a second") ?? config.httpMinBodyRate
        if let (text, source) = values["trusted-proxies"] {
            let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            }
            config.trustedProxies = try items.map { item in
                guard let range = IPAddressRange(item) else {
                    throw Invalid(
                        key: source,
                        reason:
                            "must be a comma-separated list of addresses or CIDR ranges, e.g. 127.0.0.1, 10.0.0.0/8 (got \(item))"
                    )
                }
                return range
            }
        }
        config.telemetryDays = try whole("telemetry-days", 1...3650, of: "days") ?? config.telemetryDays
        config.outbound = try outbound(values)
        if let (url, source) = values["device-url"] {
            guard let u = URL(string: url), ["http", "https"].contains(u.scheme?.lowercased() ?? ""),
                u.host?.isEmpty == false, u.query == nil
            else {
                throw Invalid(
                    key: source,
                    reason:
                        "must be an http or https URL that devices reach Linli at, e.g. http://192.168.1.10:8080 (got \(url))"
                )
            }
            config.deviceURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        return config
    }

    /// The SMS gateway (its URL and signing secret, both or neither) and the SMTP relay (its URL
    /// and the sender address, both or neither).
    private static func outbound(_ values: [String: (String, String)]) throws -> OutboundSettings {
        var settings = OutboundSettings()
        if let (text, source) = values["webhook-allow"] {
            do { settings.webhookAddresses = try WebhookAddresses(allow: text) } catch {
                throw Invalid(
                    key: source,
                    reason:
                        "must be a comma-separated list of addresses, CIDR ranges and host names, e.g. 192.168.10.0/24, hooks.lan (\(error.issues.first?.reason ?? ""))"
                )
            }
        }
        switch (values["sms-webhook"], values["sms-secret"]) {
        case (nil, nil): break
        case let ((_, source)?, nil):
            throw Invalid(
                key: source,
                reason:
                    "needs sms-secret as well (16 characters or more; give it by environment or config file, not on the command line)"
            )
        case let (nil, (_, source)?):
            throw Invalid(key: source, reason: "needs sms-webhook as well, the URL of the SMS gateway")
        case let ((url, urlSource)?, (secret, secretSource)?):
            guard let u = URL(string: url), ["http", "https"].contains(u.scheme?.lowercased() ?? ""),
                u.host?.isEmpty == false
            else {
                throw Invalid(key: urlSource, reason: "must be an http or https URL (got \(url))")
            }
            guard secret.count >= 16 else { throw Invalid(key: secretSource, reason: "must be 16 characters or more") }
            settings.smsWebhook = u
            settings.smsSecret = secret
        }
        switch (values["smtp"], values["mail-from"]) {
        case (nil, nil): break
        case let ((_, source)?, nil):
            throw Invalid(key: source, reason: "needs mail-from as well, the address e-mail is sent from")
        case let (nil, (_, source)?):
            throw Invalid(key: source, reason: "needs smtp as well, e.g. smtp://user:password@mail.example.org:587")
        case let ((url, urlSource)?, (from, fromSource)?):
            guard EmailAddress.isValid(from) else {
                throw Invalid(key: fromSource, reason: "must be an e-mail address (got \(from))")
            }
            guard let smtp = SMTPSettings.parse(url, from: from) else {
                throw Invalid(
                    key: urlSource, reason: "must look like smtp://user:password@host:port or smtp://host:port")
            }
            settings.smtp = smtp
        }
        return settings
    }

    /// `host:port`, or an error naming where the value came from.
    private static func address(_ value: String, source: String, example: String) throws -> (String, Int) {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (0...65535).contains(port) else {
            throw Invalid(key: source, reason: "must be host:port, for example \(example) (got \(value))")
        }
        return (String(parts[0]), port)
    }

    /// The TLS listener: on (by default at 127.0.0.1:8883) once both a certificate and its key are
    /// configured. The files are read and checked here, even with `mqtt-tls = off`, so that a wrong
    /// one stops start-up rather than surfacing at the first device's handshake.
    private static func mqttTLS(_ values: [String: (String, String)]) throws -> MQTTTLSListener? {
        var (host, port, on) = ("127.0.0.1", 8883, true)
        if let (tls, source) = values["mqtt-tls"] {
            if tls.lowercased() == "off" {
                on = false
            } else {
                (host, port) = try address(tls, source: source, example: "127.0.0.1:8883, or off")
            }
        }
        switch (values["mqtt-tls-cert"], values["mqtt-tls-key"]) {
        case (nil, nil):
            if on, let (tls, source) = values["mqtt-tls"] {
                throw Invalid(
                    key: source,
                    reason:
                        "needs mqtt-tls-cert and mqtt-tls-key, PEM files of the certificate and its key (got \(tls))")
            }
            return nil
        case let ((_, source)?, nil):
            throw Invalid(key: source, reason: "needs mqtt-tls-key as well, the certificate's private key (PEM)")
        case let (nil, (_, source)?):
            throw Invalid(key: source, reason: "needs mqtt-tls-cert as well, the certificate (PEM) this key belongs to")
        case let ((certificate, certificateSource)?, (key, keySource)?):
            do {
                let listener = try MQTTTLSListener(host: host, port: port, certificateFile: certificate, keyFile: key)
                return on ? listener : nil
            } catch {
                switch error {
                case .certificateUnreadable:
                    throw Invalid(key: certificateSource, reason: "file \(certificate) cannot be read")
                case .certificateNotPEM:
                    throw Invalid(key: certificateSource, reason: "file \(certificate) holds no PEM certificate")
                case .keyUnreadable: throw Invalid(key: keySource, reason: "file \(key) cannot be read")
                case .keyNotPEM:
                    throw Invalid(key: keySource, reason: "file \(key) is not an unencrypted PEM private key")
                case .keyDoesNotMatchCertificate:
                    throw Invalid(
                        key: keySource, reason: "file \(key) is not the key of the certificate in \(certificate)")
                }
            }
        }
    }
}

/// Opens what a node needs from its data folder: the secret for field encryption and the database.
public enum DataFolder {
    /// The 32-byte secret: `LINLI_SECRET_KEY` (base64) when set, else the file `LINLI_SECRET_KEY_FILE`
    /// names (kept apart from the data folder and its backups), else `secret.key` in the data
    /// folder, created with owner-only permissions on first start. Never a default in code.
    public static func secret(directory: String, environment: [String: String]) throws -> Data {
        if let file = environment["LINLI_SECRET_KEY_FILE"], !file.isEmpty {
            guard let contents = FileManager.default.contents(atPath: file) else {
                throw ServerConfiguration.Invalid(
                    key: "LINLI_SECRET_KEY_FILE",
                    reason:
                        "names \(file), which cannot be read (make it with: head -c 32 /dev/urandom | base64 > \(file))"
                )
            }
            guard
                let data = Data(
                    base64Encoded: String(decoding: contents, as: UTF8.self).trimmingCharacters(
                        in: .whitespacesAndNewlines)), data.count >= 32
            else {
                throw ServerConfiguration.Invalid(
                    key: "LINLI_SECRET_KEY_FILE", reason: "\(file) is not base64 of at least 32 bytes")
            }
            return data
        }
        if let text = environment["LINLI_SECRET_KEY"], !text.isEmpty {
            guard let data = Data(base64Encoded: text), data.count >= 32 else {
                throw ServerConfiguration.Invalid(
                    key: "LINLI_SECRET_KEY", reason: "must be base64 of at least 32 random bytes")
            }
            return data
        }
        let path = (directory as NSString).appendingPathComponent("secret.key")
        if let existing = FileManager.default.contents(atPath: path) {
            guard
                let data = Data(
                    base64Encoded: String(decoding: existing, as: UTF8.self).trimmingCharacters(
                        in: .whitespacesAndNewlines)), data.count >= 32
            else {
                throw ServerConfiguration.Invalid(key: path, reason: "is not base64 of at least 32 bytes")
            }
            return data
        }
        let secret = FieldCipher.randomSecret()
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data(secret.base64EncodedString().utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw ServerConfiguration.Invalid(key: "data", reason: "folder \(directory) is not writable")
        }
        return secret
    }

    public static func prepare(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ServerConfiguration.Invalid(
                key: "data", reason: "folder \(directory) cannot be created: \(error.localizedDescription)")
        }
    }

    /// Opens the store for `config`: PostgreSQL when a URL is given, else SQLite in the data folder.
    public static func openStore(_ config: ServerConfiguration, environment: [String: String], logger: Logger)
        async throws -> Store
    {
        try prepare(config.dataDirectory)
        let secret = try secret(directory: config.dataDirectory, environment: environment)
        let database: any Database
        var telemetry: (any Database)? = nil
        if let url = config.postgresURL {
            database = try await PostgresStore.open(url: url, logger: logger)
        } else {
            let folder = config.dataDirectory as NSString
            database = try await SQLiteStore.open(path: folder.appendingPathComponent("linli.sqlite"), logger: logger)
            telemetry = try await SQLiteStore.open(
                path: folder.appendingPathComponent("telemetry.sqlite"), readers: 2, logger: logger, name: "telemetry",
                tuning: .telemetry)
        }
        return Store(database: database, telemetry: telemetry, cipher: try FieldCipher(secret: secret))
    }
}
