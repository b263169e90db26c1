import ArgumentParser
import Foundation
import Hummingbird
import LinliBrokerStore
import LinliCommunity
import LinliCore
import LinliDemo
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliLinkage
import LinliMQTT
import LinliMessaging
import LinliServer
import LinliStorage
import LinliThings
import LinliWorkOrders
import Logging

/// Where and how to reach the database; shared by every command.
struct StorageOptions: ParsableArguments {
    @Option(help: "Data folder: the SQLite database and the field-encryption secret (env LINLI_DATA).")
    var data: String?
    @Option(
        name: .customLong("postgres-url"),
        help:
            "Use PostgreSQL instead of SQLite, e.g. postgres://user:pass@127.0.0.1:5432/linli (env LINLI_POSTGRES_URL)."
    )
    var postgresURL: String?
    @Option(help: "A file of `key = value` lines (\(ServerConfiguration.keys.joined(separator: ", "))).")
    var config: String?
    @Option(
        name: .customLong("log-level"),
        help: "trace, debug, info, notice, warning, error or critical (env LINLI_LOG_LEVEL).")
    var logLevel: String?

    func resolve(
        http: String? = nil, mqtt: String? = nil, mqttTLS: String? = nil, mqttTLSCert: String? = nil,
        mqttTLSKey: String? = nil,
        more: [String: String] = [:]
    ) throws -> ServerConfiguration {
        var flags = more
        if let mqtt { flags["mqtt"] = mqtt }
        if let mqttTLS { flags["mqtt-tls"] = mqttTLS }
        if let mqttTLSCert { flags["mqtt-tls-cert"] = mqttTLSCert }
        if let mqttTLSKey { flags["mqtt-tls-key"] = mqttTLSKey }
        if let data { flags["data"] = data }
        if let postgresURL { flags["postgres-url"] = postgresURL }
        if let logLevel { flags["log-level"] = logLevel }
        if let http { flags["http"] = http }
        do {
            return try ServerConfiguration.resolve(
                flags: flags, environment: ProcessInfo.processInfo.environment, configFile: config)
        } catch let invalid as ServerConfiguration.Invalid {
            throw ValidationError(invalid.description)
        }
    }

    /// Opens the store and brings its schema up to date (or refuses a newer one).
    func open(_ configuration: ServerConfiguration, logger: Logger, migrate: Bool = true) async throws -> Store {
        let store: Store
        do {
            store = try await DataFolder.openStore(
                configuration, environment: ProcessInfo.processInfo.environment, logger: logger)
        } catch let invalid as ServerConfiguration.Invalid {
            throw ValidationError(invalid.description)
        }
        do {
            if migrate {
                try await Migrations.migrate(store, schema: .linli, logger: logger)
                let sealed = try await store.sealPhones()
                if sealed > 0 { logger.notice("residents' phones encrypted", metadata: ["people": "\(sealed)"]) }
            } else {
                try await Migrations.requireCurrent(store, schema: .linli)
            }
        } catch let error as MigrationError {
            await store.close()
            throw CLIError(error.description)
        }
        return store
    }
}

/// Unbuffered: a line is seen at once even when standard output is a pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

extension StorageOptions {
    /// Resolves the settings, opens (and migrates) the store, runs `body`, and closes the store
    /// whatever happens. A storage conflict becomes a plain CLI message.
    func withStore<T>(_ body: (Store) async throws -> T) async throws -> T {
        let configuration = try resolve()
        let store = try await open(configuration, logger: makeLogger(configuration.logLevel))
        do {
            let result = try await body(store)
            await store.close()
            return result
        } catch StoreError.conflict(let field, let reason) {
            await store.close()
            throw CLIError("\(field) \(reason)")
        } catch let invalid as ValidationFailure {
            await store.close()
            // The API's field names, as the options spell them (gridId is --grid).
            let options = [
                "communityId": "--community", "gridId": "--grid", "householdId": "--household",
                "organisationId": "--organisation",
            ]
            throw CLIError(
                invalid.issues.map { "\(options[$0.field] ?? $0.field) \($0.reason)" }.joined(separator: "; "))
        } catch {
            await store.close()
            throw error
        }
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func makeLogger(_ level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    var logger = Logger(label: "linli")
    logger.logLevel = level
    return logger
}

func printCredentials(_ credentials: [DemoCommunity.Credential]) {
    say("")
    say("Demo community 幸福里小区 created. These passwords are shown once:")
    say("")
    say("  role              username   password")
    for c in credentials {
        say(
            "  " + c.role.rawValue.padding(toLength: 18, withPad: " ", startingAt: 0)
                + c.username.padding(toLength: 11, withPad: " ", startingAt: 0) + c.password)
    }
    say("")
}

@main
struct Linli: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "linli",
        abstract: "Linli 邻里 — the community operating system.",
        version: LinliVersion.current,
        subcommands: [
            Serve.self, Migrate.self, Demo.self, User.self, Token.self, MQTTAccounts.self, Products.self, Devices.self,
            Open311Keys.self, Bench.self,
        ]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server: HTTP API, web console and resident portal.")
    @OptionGroup var storage: StorageOptions
    @Option(help: "Address to listen on, host:port (env LINLI_HTTP). Default 127.0.0.1:8080.")
    var http: String?
    @Option(help: "The embedded MQTT broker's address, host:port, or off (env LINLI_MQTT). Default 127.0.0.1:1883.")
    var mqtt: String?
    @Option(
        name: .customLong("mqtt-tls"),
        help:
            "The broker's TLS listener, host:port, or off (env LINLI_MQTT_TLS). Default 127.0.0.1:8883 when a certificate is set."
    )
    var mqttTLS: String?
    @Option(
        name: .customLong("mqtt-tls-cert"),
        help: "PEM certificate (chain, leaf first) for MQTT over TLS (env LINLI_MQTT_TLS_CERT).")
    var mqttTLSCert: String?
    @Option(name: .customLong("mqtt-tls-key"), help: "PEM private key of that certificate (env LINLI_MQTT_TLS_KEY).")
    var mqttTLSKey: String?
    @Option(
        help:
            "SMTP relay for e-mail notifications, smtp://[user:password@]host:port (env LINLI_SMTP); needs --mail-from."
    )
    var smtp: String?
    @Option(name: .customLong("mail-from"), help: "The address e-mail notifications come from (env LINLI_MAIL_FROM).")
    var mailFrom: String?
    @Option(
        name: .customLong("sms-webhook"),
        help:
            "URL of the SMS gateway's webhook (env LINLI_SMS_WEBHOOK); its signing secret comes from LINLI_SMS_SECRET or the config file."
    )
    var smsWebhook: String?
    @Option(
        name: .customLong("webhook-allow"),
        help:
            "Addresses, CIDR ranges and host names rules' webhooks may reach although they are private or local, comma-separated (env LINLI_WEBHOOK_ALLOW)."
    )
    var webhookAllow: String?
    @Option(
        name: .customLong("trusted-proxies"),
        help:
            "Reverse proxies (addresses or CIDR ranges, comma-separated) whose X-Forwarded-For names the client (env LINLI_TRUSTED_PROXIES)."
    )
    var trustedProxies: String?
    @Option(
        name: .customLong("device-url"),
        help:
            "The address devices reach Linli's HTTP at, for firmware downloads (env LINLI_DEVICE_URL); default: the --http address."
    )
    var deviceURL: String?
    @Flag(help: "Seed the demo community on first start and print its accounts.")
    var demo = false

    func run() async throws {
        var more: [String: String] = [:]
        if let smtp { more["smtp"] = smtp }
        if let mailFrom { more["mail-from"] = mailFrom }
        if let smsWebhook { more["sms-webhook"] = smsWebhook }
        if let webhookAllow { more["webhook-allow"] = webhookAllow }
        if let trustedProxies { more["trusted-proxies"] = trustedProxies }
        if let deviceURL { more["device-url"] = deviceURL }
        let configuration = try storage.resolve(
            http: http, mqtt: mqtt, mqttTLS: mqttTLS, mqttTLSCert: mqttTLSCert, mqttTLSKey: mqttTLSKey, more: more)
        let logger = makeLogger(configuration.logLevel)
        // Every connection is a file descriptor: take all the kernel allows this process.
        if let files = OpenFileLimit.raiseToHard() {
            logger.info("open-file limit \(files)")
            if files.soft < 4_096 {
                logger.warning(
                    "the open-file limit is low: MQTT connections beyond it are refused",
                    metadata: ["soft": "\(files.soft)", "hard": "\(files.hard)"])
            }
        }
        Telemetry.bootstrap()  // before the database opens, so its pool gauges are exported
        let store = try await storage.open(configuration, logger: logger)
        if demo {
            if let credentials = try await DemoCommunity.seed(
                store, hashPassword: Passwords.hash, generatePassword: Passwords.generate)
            {
                printCredentials(credentials)
            } else {
                say(
                    "The data folder already holds a community, so no demo was seeded. Demo passwords are shown only when they are made; set a new one with `linli user password --username manager`."
                )
            }
        }
        let rules = RuleService(store: store, logger: logger)
        let broker = configuration.mqttBroker.map {
            MQTTBrokerService(store: store, configuration: $0, rules: rules, logger: logger)
        }
        broker?.gateway.downloadBase.withLock { $0 = configuration.downloadBase }
        let services: AppServices
        do {
            services = try AppServices(
                store: store, configuration: configuration, logger: logger, devices: broker?.gateway, rules: rules)
        } catch {
            // A build without its templates or API document cannot serve: say which, and close the
            // database cleanly rather than leave it to a crash.
            await store.close()
            throw CLIError("\(error)")
        }
        let retention = TelemetryRetentionService(store: store, days: configuration.telemetryDays, logger: logger)
        let webhooks = WebhookService(
            store: store, addresses: configuration.outbound.webhookAddresses, logger: logger)
        rules.attach(devices: broker?.gateway, webhooks: webhooks)
        let outbound = OutboundService(store: store, settings: configuration.outbound, logger: logger)
        let relay = try WorkOrderRelay(store: store, logger: logger)
        let app = buildApplication(
            services, logger: logger,
            alongside: (broker.map { [$0] } ?? []) + [retention, rules, webhooks, outbound, relay])
        let tls = configuration.mqttTLS.map { " and TLS on \($0.host):\($0.port)" } ?? ""
        say(
            "Linli \(LinliVersion.current) on http://\(configuration.host):\(configuration.port) — \(configuration.postgresURL == nil ? "SQLite in " + configuration.dataDirectory : "PostgreSQL")"
                + (configuration.mqttHost.map { ", MQTT on \($0):\(configuration.mqttPort)" + tls } ?? ""))
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the database migrations this Linli knows.")
    @OptionGroup var storage: StorageOptions

    func run() async throws {
        try await storage.withStore { _ in }
        say("schema at version \(Schema.linli.latest)")
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seed the demo community into an empty database and print its accounts.")
    @OptionGroup var storage: StorageOptions

    func run() async throws {
        let credentials = try await storage.withStore { store in
            try await DemoCommunity.seed(store, hashPassword: Passwords.hash, generatePassword: Passwords.generate)
        }
        guard let credentials else {
            throw CLIError("the database already holds a community; the demo seeds only an empty one")
        }
        printCredentials(credentials)
    }
}

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage sign-in accounts.", subcommands: [Create.self, Password.self])

    static func readPassword(stdin: Bool) throws -> (String, generated: Bool) {
        if stdin {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                throw CLIError("no password on standard input")
            }
            do { try Passwords.validate(line) } catch { throw CLIError("password " + error.issues[0].reason) }
            return (line, false)
        }
        return (Passwords.generate(), true)
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account, optionally with a role (the first administrator, for instance).")
        @OptionGroup var storage: StorageOptions
        @Option var username: String
        @Option(name: .customLong("display-name")) var displayName: String?
        @Option(help: "One of \(Role.allCases.map(\.rawValue).joined(separator: ", ")).") var role: String?
        @Option(help: "Community id, for every role but platform_admin.") var community: String?
        @Option var grid: String?
        @Option var household: String?
        @Option var organisation: String?
        @Flag(
            name: .customLong("password-stdin"),
            help: "Read the password from standard input instead of generating one.")
        var passwordStdin = false

        func validate() throws {
            if let role, Role(rawValue: role) == nil {
                throw ValidationError("--role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let role = role.flatMap(Role.init(rawValue:)), role != .platformAdmin, community == nil {
                throw ValidationError("--community is required for \(role.rawValue)")
            }
            if username.isEmpty || username.count > 64 {
                throw ValidationError("--username must be 1 to 64 characters")
            }
        }

        func run() async throws {
            let (password, generated) = try User.readPassword(stdin: passwordStdin)
            let account = Account(
                username: username.lowercased(), displayName: displayName ?? username,
                passwordHash: try await Passwords.hash(password))
            try await storage.withStore { store in
                let binding = role.flatMap(Role.init(rawValue:)).map { role in
                    RoleBinding(
                        accountId: account.id, role: role, communityId: role == .platformAdmin ? nil : community,
                        organisationId: organisation, gridId: grid, householdId: household)
                }
                // Checked before the account is made, so a bad --grid leaves no account behind.
                if let binding { try await store.checkRoleBinding(binding) }
                try await store.createAccount(account, actor: cli)
                if let binding { try await store.bindRole(binding, actor: cli) }
            }
            say("created account \(account.username)" + (generated ? " with password \(password)" : ""))
        }
    }

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a new password for an account (ends its sessions and revokes its API tokens).")
        @OptionGroup var storage: StorageOptions
        @Option var username: String
        @Flag(name: .customLong("password-stdin")) var passwordStdin = false
        @Flag(name: .customLong("keep-tokens"), help: "Keep the account's API tokens (recorded in the audit log).")
        var keepTokens = false

        func run() async throws {
            let (password, generated) = try User.readPassword(stdin: passwordStdin)
            let hash = try await Passwords.hash(password)
            let (account, revoked) = try await storage.withStore { store in
                let account = try await existingAccount(username, store)
                let revoked = try await store.setPassword(
                    accountId: account.id, hash: hash, keepTokens: keepTokens, actor: cli)
                return (account, revoked)
            }
            say("password changed for \(account.username)" + (generated ? ": \(password)" : ""))
            if !revoked.isEmpty {
                say(
                    "API tokens revoked: " + revoked.map(\.name).joined(separator: ", ") + " (--keep-tokens keeps them)"
                )
            }
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "API tokens.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an API token for an account; prints it once, alone on the last line.")
        @OptionGroup var storage: StorageOptions
        @Option var username: String
        @Option var name: String

        func run() async throws {
            let token = try await storage.withStore { store in
                try await store.createToken(accountId: existingAccount(username, store).id, name: name, actor: cli)
                    .token
            }
            say(token)
        }
    }
}

struct MQTTAccounts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqtt-account", abstract: "Accounts for other systems on the MQTT broker.",
        subcommands: [Create.self, Password.self, Disable.self, Enable.self, Sessions.self])

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give an integration account a new password; its clients must use it from their next CONNECT.")
        @OptionGroup var storage: StorageOptions
        @Option var username: String
        @Flag(name: .customLong("password-stdin")) var passwordStdin = false

        func run() async throws {
            let (password, generated) = try User.readPassword(stdin: passwordStdin)
            let hash = try await Passwords.hash(password)
            try await storage.withStore { store in
                try await store.updateMQTTAccount(username: username, passwordHash: hash, actor: cli)
            }
            say("new password for MQTT account \(username)" + (generated ? ": \(password)" : ""))
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Refuse an integration account's clients from their next CONNECT.")
        @OptionGroup var storage: StorageOptions
        @Option var username: String

        func run() async throws {
            try await storage.withStore { store in
                try await store.updateMQTTAccount(username: username, status: .disabled, actor: cli)
            }
            say("MQTT account \(username) disabled")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a disabled integration account sign in again.")
        @OptionGroup var storage: StorageOptions
        @Option var username: String

        func run() async throws {
            try await storage.withStore { store in
                try await store.updateMQTTAccount(username: username, status: .active, actor: cli)
            }
            say("MQTT account \(username) enabled")
        }
    }

    struct Sessions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "The persistent sessions (clean session 0) an account's clients hold: messages kept for them, and dropped when their queue was full."
        )
        @OptionGroup var storage: StorageOptions
        @Option var username: String

        func run() async throws {
            let sessions = try await storage.withStore { store in
                guard try await store.mqttAccount(username: username) != nil else {
                    throw CLIError("no MQTT account named \(username)")
                }
                return try await BrokerSessionStore.sessions(in: store.telemetry, usernames: [username])
            }
            guard !sessions.isEmpty else {
                say("\(username) has no persistent sessions")
                return
            }
            let formatter = ISO8601DateFormatter()
            say("client id                         state                               kept  dropped  subscriptions")
            for s in sessions {
                let when = formatter.string(from: Date(timeIntervalSince1970: Double(s.changedAt) / 1000))
                let state = (s.connected ? "connected since " : "away since ") + when
                say(
                    s.clientId.padding(toLength: 34, withPad: " ", startingAt: 0)
                        + state.padding(toLength: 36, withPad: " ", startingAt: 0)
                        + String(s.kept).padding(toLength: 6, withPad: " ", startingAt: 0)
                        + String(s.dropped).padding(toLength: 9, withPad: " ", startingAt: 0) + String(s.subscriptions))
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an integration account with the topics it may publish to and subscribe to.")
        @OptionGroup var storage: StorageOptions
        @Option var username: String
        @Option(help: "What the account is for.") var description: String = ""
        @Option(name: .customLong("publish"), help: "A topic filter it may publish to (repeatable).") var publish:
            [String] = []
        @Option(name: .customLong("subscribe"), help: "A topic filter it may subscribe to (repeatable).") var subscribe:
            [String] = []
        @Flag(name: .customLong("password-stdin")) var passwordStdin = false

        func validate() throws {
            if username.isEmpty || username.count > 64 {
                throw ValidationError("--username must be 1 to 64 characters")
            }
            if username.unicodeScalars.contains(where: {
                $0.properties.generalCategory == .control || $0.properties.isWhitespace
            }) {
                throw ValidationError("--username must not hold spaces or control characters")
            }
            // `{deviceName}&{productKey}` is how a device signs in; such a name never reaches the accounts.
            if username.contains("&") {
                throw ValidationError("--username must not hold '&': that form is a device's sign-in")
            }
            if publish.isEmpty && subscribe.isEmpty {
                throw ValidationError("give at least one --publish or --subscribe topic filter")
            }
            for filter in publish + subscribe {
                do { try Topic.validateFilter(filter, limits: MQTTLimits()) } catch {
                    throw ValidationError("topic filter '\(filter)' is not valid: \(error)")
                }
            }
        }

        func run() async throws {
            let (password, generated) = try User.readPassword(stdin: passwordStdin)
            let account = MQTTAccount(
                username: username, passwordHash: try await Passwords.hash(password), description: description,
                publish: publish, subscribe: subscribe)
            try await storage.withStore { store in try await store.createMQTTAccount(account, actor: cli) }
            say("created MQTT account \(username)" + (generated ? " with password \(password)" : ""))
        }
    }
}

struct Open311Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open311", abstract: "Open311 GeoReport v2 for third-party reporters.",
        subcommands: [KeyCreate.self])

    struct KeyCreate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "key", abstract: "Create an API key for a reporter (a city app, a hotline); prints it once.")
        @OptionGroup var storage: StorageOptions
        @Option var community: String?
        @Option(help: "Who the key is for.") var name: String

        func validate() throws {
            if name.isEmpty || name.count > 100 { throw ValidationError("--name must be 1 to 100 characters") }
        }

        func run() async throws {
            let key = try await storage.withStore { store in
                let home = try await resolveCommunity(community, store: store)
                return try await store.createOpen311Key(communityId: home.id, name: name, actor: cli).key
            }
            say(key)
        }
    }
}

/// Who the audit trail names for changes made from the command line.
let cli = Principal(accountId: nil, name: "cli")

func existingAccount(_ username: String, _ store: Store) async throws -> Account {
    guard let account = try await store.account(username: username.lowercased()) else {
        throw CLIError("no account named \(username)")
    }
    return account
}

/// The community a command acts in: the one named, or the only one there is.
func resolveCommunity(_ id: String?, store: Store) async throws -> Community {
    let all = try await store.communities(scope: .everything, memberships: [])
    if let id {
        guard let found = all.first(where: { $0.id == id }) else { throw CLIError("no community with id \(id)") }
        return found
    }
    guard all.count == 1 else { throw CLIError("--community is required: the database holds \(all.count) communities") }
    return all[0]
}

struct Products: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "product", abstract: "Products: kinds of device with their thing model.",
        subcommands: [Create.self, Library.self, TSL.self])

    struct TSL: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tsl", abstract: "Print a product's thing model as TSL JSON (for device SDKs).")
        @OptionGroup var storage: StorageOptions
        @Option(name: .customLong("product-key")) var productKey: String

        func run() async throws {
            let product = try await storage.withStore { store in try await store.product(key: productKey) }
            guard let product else { throw CLIError("no product with key \(productKey)") }
            say(product.tslJson)
        }
    }

    struct Library: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the built-in thing models.")
        func run() {
            for entry in ProductLibrary.all {
                say(entry.key.padding(toLength: 20, withPad: " ", startingAt: 0) + entry.name)
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a product from the library or a TSL file; prints its ProductKey.")
        @OptionGroup var storage: StorageOptions
        @Option var community: String?
        @Option(help: "A built-in thing model (see `linli product library`).") var library: String?
        @Option(help: "A TSL JSON file.") var tsl: String?
        @Option var name: String?
        @Option(
            name: .customLong("node-type"),
            help: "device or gateway (a gateway brings sub-devices in); default: the library entry's, else device.")
        var nodeType: String?
        @Flag(
            name: .customLong("dynamic-registration"),
            help: "Gateways may ask for the secrets of this product's devices that never signed in.")
        var dynamicRegistration = false

        func validate() throws {
            if (library == nil) == (tsl == nil) { throw ValidationError("give exactly one of --library or --tsl") }
            if let nodeType, NodeType(rawValue: nodeType) == nil {
                throw ValidationError("--node-type must be device or gateway, got '\(nodeType)'")
            }
            if let library, ProductLibrary.entry(library) == nil {
                throw ValidationError(
                    "--library must be one of \(ProductLibrary.all.map(\.key).joined(separator: ", "))")
            }
        }

        func run() async throws {
            var model: ThingModel
            var productName = name
            if let library, let entry = ProductLibrary.entry(library) {
                model = entry.model
                productName = productName ?? entry.name
            } else {
                guard let data = FileManager.default.contents(atPath: tsl!) else {
                    throw CLIError("cannot read \(tsl!)")
                }
                do { model = try ThingModel.parse(tsl: data) } catch {
                    throw CLIError("the TSL is not valid: \(error)")
                }
            }
            let key = model.productKey ?? Product.newKey()
            model.productKey = key
            let tslJson = String(decoding: model.tsl.serialized(), as: UTF8.self)
            try await storage.withStore { store in
                let home = try await resolveCommunity(community, store: store)
                let type =
                    nodeType.flatMap(NodeType.init(rawValue:))
                    ?? (library.flatMap(ProductLibrary.entry)?.isGateway == true ? .gateway : .device)
                try await store.createProduct(
                    Product(
                        communityId: home.id, productKey: key, name: productName ?? key, libraryKey: library,
                        tslJson: tslJson,
                        nodeType: type, dynamicRegistration: dynamicRegistration), actor: cli)
            }
            say(key)
        }
    }
}

struct Devices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Devices.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a device; prints its triple (ProductKey DeviceName DeviceSecret) once.")
        @OptionGroup var storage: StorageOptions
        @Option(name: .customLong("product-key")) var productKey: String
        @Option var name: String

        func validate() throws {
            if name.isEmpty || name.count > 32
                || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_@.:".contains($0)) })
            {
                throw ValidationError("--name must be 1 to 32 letters, digits or - _ @ . :")
            }
        }

        func run() async throws {
            let (device, secret) = try await storage.withStore { store in
                guard let product = try await store.product(key: productKey) else {
                    throw CLIError("no product with key \(productKey)")
                }
                return try await store.registerDevice(product: product, deviceName: name, actor: cli)
            }
            say("\(device.productKey) \(device.deviceName) \(secret)")
        }
    }
}
