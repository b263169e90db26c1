import Foundation
import LinliBrokerStore
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliHouseholdImport
import LinliLinkage
import LinliMQTT
import LinliMessaging
import LinliStorage
import LinliWorkOrders
import Logging

extension Schema {
    /// Every module's tables: what `linli serve` and `linli migrate` bring a database to.
    public static let linli: Schema =
        .storage + .identity + .community + .devices + .broker + .linkage + .messaging + .workOrders
}

extension ServerConfiguration {
    /// What the HTTP kernel reads of the configuration.
    public var http: HTTPSettings {
        HTTPSettings(
            host: host, port: port, dataDirectory: dataDirectory, sessionHours: sessionHours,
            secureCookies: secureCookies, httpIdleSeconds: httpIdleSeconds, trustedProxies: trustedProxies,
            maxConnections: httpSocketCap(fileLimit: OpenFileLimit.current()?.soft),
            connectionsPerAddress: httpConnectionsPerAddress, headerSeconds: httpHeaderSeconds,
            minBodyRate: httpMinBodyRate)
    }
}

extension AppServices {
    /// The services of the whole application: the kernel's, with the modules' templates, the API
    /// document and what the modules keep beside them.
    public init(
        store: Store, configuration: ServerConfiguration, logger: Logger, devices: DeviceGateway? = nil,
        rules: RuleService? = nil
    ) throws {
        try self.init(
            store: store, configuration: configuration.http, logger: logger,
            templates: [
                try CommunityModule.templates, try HouseholdImportModule.templates, try DevicesModule.templates,
                try WorkOrdersModule.templates,
                try MessagingModule.templates, try LinkageModule.templates,
            ],
            openAPIDocument: try Self.openAPIDocument())
        if let devices { attachments.set(devices) }
        if let rules { attachments.set(rules) }
        attachments.set(configuration.outbound)
    }

    /// The assembly's base document with every module's part, in the order the modules are
    /// registered (tests/contract/check_routes.py merges them in the same order).
    static func openAPIDocument() throws -> String {
        try OpenAPIDocument.assemble(
            base: try Bundle.module.text("Resources/openapi.yaml"),
            parts: [
                ("LinliHTTP", try HTTPKernel.openAPI), ("LinliCommunity", try CommunityModule.openAPI),
                ("LinliHouseholdImport", try HouseholdImportModule.openAPI),
                ("LinliDevices", try DevicesModule.openAPI), ("LinliLinkage", try LinkageModule.openAPI),
                ("LinliWorkOrders", try WorkOrdersModule.openAPI), ("LinliMessaging", try MessagingModule.openAPI),
            ])
    }
}
