import Foundation
import HTTPTypes
import Hummingbird
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliDevices
import LinliHTTP
import LinliHouseholdImport
import LinliLinkage
import LinliMessaging
import LinliStorage
import LinliWorkOrders
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes
import Prometheus
import ServiceLifecycle
import Synchronization

/// Closes the database when the service group shuts down, after the HTTP server has drained.
public struct DatabaseService: Service {
    let store: Store
    public init(store: Store) { self.store = store }
    public func run() async throws {
        try? await gracefulShutdown()
        await store.close()
    }
}

public func buildRouter(_ services: AppServices) -> Router<AppContext> {
    Telemetry.bootstrap()
    // HEAD on every GET route (RFC 9110 §9.1): uptime monitors and link checkers ask with HEAD.
    // The GET handler runs, with its checks, and the body is dropped unsent (an event stream's
    // too, so a HEAD on it ends at once).
    let uploads = URL(fileURLWithPath: services.configuration.dataDirectory).appendingPathComponent("attachments").path
    UploadWriter.clearIncoming(folder: uploads)
    let router = Router(context: AppContext.self, options: .autoGenerateHeadEndpoints)
    router.addMiddleware {
        // First: the log, the throttles and the audit all see the client behind a proxy.
        ForwardedForMiddleware(proxies: services.configuration.trustedProxies)
        LogRequestsMiddleware()
        MetricsMiddleware()
        // Outside the problems, so that an error page or problem document carries them too.
        SecurityHeadersMiddleware()
        ProblemMiddleware(pages: services.pages)
        IdentityMiddleware(
            store: services.store, callers: services.callers, uploads: uploads)
        ResponseCacheMiddleware(cache: services.responses, changes: services.store.changes)
    }
    let store = services.store
    let devices = services.devices

    router.get("/healthz") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
    }
    router.get("/readyz") { _, _ in
        do {
            try await Migrations.requireCurrent(store, schema: .linli)
            if let devices, !devices.listening.load(ordering: .relaxed) {
                return try JSON.response(
                    ["status": "not ready", "reason": "the MQTT broker is not listening yet"],
                    status: .serviceUnavailable)
            }
            return try JSON.response(["status": "ready", "schema": "\(Schema.linli.latest)"])
        } catch {
            return try JSON.response(["status": "not ready", "reason": "\(error)"], status: .serviceUnavailable)
        }
    }
    router.get("/metrics") { _, _ in
        var buffer: [UInt8] = []
        Telemetry.registry.emit(into: &buffer)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
    }
    router.get("/api/v1/openapi.yaml") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: services.openAPIDocument)))
    }
    router.get("/api/docs") { _, _ in try services.pages.apiReference(services.openAPIDocument) }

    // Each module adds its JSON routes under /api/v1 and its pages; the kernel's first.
    let api = router.group("/api/v1")
    HTTPKernel.register(api: api, router: router, services: services)
    CommunityModule.register(api: api, router: router, services: services)
    HouseholdImportModule.register(api: api, router: router, services: services)
    DevicesModule.register(api: api, router: router, services: services)
    LinkageModule.register(api: api, router: router, services: services)
    WorkOrdersModule.register(api: api, router: router, services: services)
    MessagingModule.register(api: api, router: router, services: services)
    // Last, after every route: it wraps only the router's not-found responder (see its comment),
    // and its table must hold every route.
    router.add(middleware: MethodNotAllowedMiddleware<AppContext>(routes: RouteMethods(router, headForGet: true)))
    return router
}

public func buildApplication(_ services: AppServices, logger: Logger, alongside: [any Service] = [])
    -> some ApplicationProtocol
{
    let router = buildRouter(services)
    let settings = services.configuration
    let idle = TimeAmount.seconds(Int64(settings.httpIdleSeconds))
    let limits = HTTPConnectionLimits(
        total: settings.maxConnections, perAddress: settings.connectionsPerAddress,
        exempt: settings.trustedProxies, logger: logger)
    logger.info(
        "HTTP sockets allowed",
        metadata: [
            "sockets": "\(limits.total) (+\(limits.reserve) for health checks)", "per address": "\(limits.perAddress)",
        ])
    var app = Application(
        router: router,
        server: .http1(
            configuration: .init(
                additionalChannelHandlers: [
                    HTTPConnectionGate(
                        limits: limits, headSeconds: settings.headerSeconds, idleSeconds: settings.httpIdleSeconds),
                    RequestBodyPause(limit: idle, minimumRate: settings.minBodyRate),
                ], idleTimeout: idle)),
        configuration: .init(
            address: .hostname(services.configuration.host, port: services.configuration.port), serverName: "Linli"),
        logger: logger
    )
    // Shutdown runs in reverse: the HTTP server drains first, then these, then the database closes.
    app.addServices(DatabaseService(store: services.store))
    app.addServices(alongside)
    return app
}
