import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliStorage
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes
import Prometheus

/// Prometheus registry behind swift-metrics, bootstrapped once per process.
public enum Telemetry {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped: Bool = {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return true
    }()

    public static func bootstrap() { _ = bootstrapped }
}

/// The settings the HTTP kernel reads; the assembly makes them from its configuration.
public struct HTTPSettings: Sendable {
    public var host: String
    public var port: Int
    /// Where uploads (photos, firmware) are kept, beside the embedded database.
    public var dataDirectory: String
    public var sessionHours: Int
    public var secureCookies: Bool
    public var httpIdleSeconds: Int
    /// Reverse proxies whose `X-Forwarded-For` names the client (`trusted-proxies`).
    public var trustedProxies: [IPAddressRange]

    public init(
        host: String = "127.0.0.1", port: Int = 8080, dataDirectory: String = "./linli-data", sessionHours: Int = 12,
        secureCookies: Bool = false, httpIdleSeconds: Int = 60, trustedProxies: [IPAddressRange] = []
    ) {
        self.trustedProxies = trustedProxies
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.sessionHours = sessionHours
        self.secureCookies = secureCookies
        self.httpIdleSeconds = httpIdleSeconds
    }
}

/// Everything the HTTP layer needs, built once at start. What a capability module needs beyond it
/// (its broker side, its engine, its settings) it keeps in `attachments`, set by the assembly.
public struct AppServices: Sendable {
    public let store: Store
    public let configuration: HTTPSettings
    public let throttle: LoginThrottle
    public let pages: Pages
    /// The OpenAPI document, as the assembly put it together from the modules' parts.
    public let openAPIDocument: String
    public let attachments = Attachments()
    package let callers = CallerCache()
    package let responses = ResponseCache()

    public init(
        store: Store, configuration: HTTPSettings, logger: Logger, templates: [URL], openAPIDocument: String
    ) throws {
        self.store = store
        self.configuration = configuration
        throttle = LoginThrottle(logger: logger)
        pages = try Pages(folders: [Pages.kernelTemplates] + templates)
        self.openAPIDocument = openAPIDocument
    }
}

/// A file a module carries that is missing from the build.
public struct MissingResource: Error, CustomStringConvertible {
    public var name: String
    public init(_ name: String) { self.name = name }
    public var description: String { "resources: \(name) is missing from the build" }
}

extension Bundle {
    /// A file or folder among a module's resources. On Linux, Foundation takes a bundle's
    /// `Resources` folder, if it has one, for its resource folder, so `Resources/x` is looked for as
    /// `x` there too.
    func resource(_ path: String) throws -> URL {
        guard let base = resourceURL else { throw MissingResource(path) }
        var candidates = [base.appendingPathComponent(path)]
        if path.hasPrefix("Resources/") { candidates.append(base.appendingPathComponent(String(path.dropFirst(10)))) }
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            throw MissingResource(path)
        }
        return found
    }

    /// A module's folder of resources (`Templates`, say), as SwiftPM copies it into the bundle.
    public func folder(_ path: String) throws -> URL { try resource(path) }

    /// A text file among a module's resources.
    public func text(_ path: String) throws -> String {
        try String(contentsOf: try resource(path), encoding: .utf8)
    }
}

/// One structured log line per request, with the request id Hummingbird assigns.
package struct LogRequestsMiddleware: RouterMiddleware {
    package typealias Context = AppContext
    package init() {}
    package func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        context.logger.info(
            "request",
            metadata: [
                "method": "\(request.method)", "path": "\(request.uri.path)", "status": "\(response.status.code)",
                "ms": "\(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)",
            ])
        return response
    }
}

package struct SecurityHeadersMiddleware: RouterMiddleware {
    package typealias Context = AppContext
    package init() {}
    package func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        return response
    }
}

/// Closes a connection whose request body stops arriving for `limit`. Hummingbird's idle timeout
/// covers the time between requests and unfinished headers; once a request's head is in, a client
/// that sends part of the body and then nothing would hold the connection and its handler for
/// ever. A pause is measured, not the whole body, so a large photo on a slow line still arrives.
package final class RequestBodyPause: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPRequestPart
    package typealias InboundOut = HTTPRequestPart

    private let limit: TimeAmount
    private var deadline: Scheduled<Void>?

    package init(limit: TimeAmount) { self.limit = limit }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deadline?.cancel()
        deadline = nil
        switch unwrapInboundIn(data) {
        case .head, .body:
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: limit) {
                bound.value.close(promise: nil)
            }
        case .end:
            break
        }
        context.fireChannelRead(data)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    package func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }
}
