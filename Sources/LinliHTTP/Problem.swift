import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliStorage
import NIOCore
import NIOHTTP1

/// An RFC 9457 problem: every error Linli answers with, naming the fields at fault.
public struct Problem: HTTPResponseError, Encodable, Sendable {
    public var status: HTTPResponse.Status
    public var type: String
    public var title: String
    public var detail: String?
    public var errors: [FieldIssue]
    public var retryAfter: Int?
    /// Headers the answer carries besides Content-Type and Retry-After (`Allow` with a 405,
    /// `Accept-Post` or `Accept-Patch` with a 415).
    public var headers: HTTPFields

    public init(
        _ status: HTTPResponse.Status, type: String, title: String, detail: String? = nil, errors: [FieldIssue] = [],
        retryAfter: Int? = nil, headers: HTTPFields = [:]
    ) {
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.errors = errors
        self.retryAfter = retryAfter
        self.headers = headers
    }

    package enum CodingKeys: String, CodingKey { case type, title, status, detail, errors }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("https://linli.dev/problems/" + type, forKey: .type)
        try c.encode(title, forKey: .title)
        try c.encode(status.code, forKey: .status)
        try c.encodeIfPresent(detail, forKey: .detail)
        if !errors.isEmpty { try c.encode(errors, forKey: .errors) }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = try encoder.encode(self)
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        headers.append(contentsOf: responseHeaders)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// What the answer carries besides its body, the same for the JSON problem and the console's page.
    package var responseHeaders: HTTPFields {
        var fields = headers
        if let retryAfter { fields[.retryAfter] = String(retryAfter) }
        return fields
    }

    public static func unauthorized() -> Problem {
        Problem(
            .unauthorized, type: "unauthorized", title: "Sign in first",
            detail: "Send a session cookie or an Authorization: Bearer token.")
    }

    public static func forbidden(_ capability: Capability) -> Problem {
        Problem(
            .forbidden, type: "forbidden", title: "Not allowed",
            detail: "Your roles do not grant \(capability.rawValue).")
    }

    public static func notFound(_ what: String) -> Problem {
        Problem(
            .notFound, type: "not-found", title: "No such \(what)",
            detail: "It does not exist or is outside what you may see.")
    }

    public static func invalid(_ issues: [FieldIssue]) -> Problem {
        Problem(
            .unprocessableContent, type: "invalid", title: "The request has invalid fields",
            detail: issues.map { "\($0.field) \($0.reason)" }.joined(separator: "; "), errors: issues)
    }

    public static func badRequest(_ field: String, _ reason: String) -> Problem {
        Problem(
            .badRequest, type: "bad-request", title: "The request cannot be read", detail: "\(field) \(reason)",
            errors: [FieldIssue(field, reason)])
    }

    /// A path Linli serves, asked with a method it does not take there (RFC 9110 §15.5.6): the
    /// `Allow` header lists the methods it does take.
    public static func methodNotAllowed(_ method: HTTPRequest.Method, path: String, allowed: [HTTPRequest.Method])
        -> Problem
    {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        return Problem(
            .methodNotAllowed, type: "method-not-allowed", title: "Method not allowed",
            detail: "\(path) does not take \(method.rawValue); it takes \(list).", headers: [.allow: list])
    }

    /// A JSON endpoint sent a body declared as something else (RFC 9110 §15.5.16).
    public static func unsupportedMediaType(_ contentType: String, method: HTTPRequest.Method) -> Problem {
        var headers: HTTPFields = [:]
        // RFC 5789 names Accept-Patch for PATCH; Accept-Post (W3C LDP) is its counterpart for POST.
        if method == .patch { headers[HTTPField.Name("Accept-Patch")!] = "application/json" }
        if method == .post { headers[HTTPField.Name("Accept-Post")!] = "application/json" }
        return Problem(
            .unsupportedMediaType, type: "unsupported-media-type", title: "The body must be JSON",
            detail:
                "Content-Type is \(contentType.prefix(100)); this endpoint takes application/json (or another JSON type, application/*+json).",
            errors: [FieldIssue("Content-Type", "must be application/json")], headers: headers)
    }

    public static func conflict(_ field: String, _ reason: String) -> Problem {
        Problem(
            .conflict, type: "conflict", title: "This conflicts with what is stored", detail: "\(field) \(reason)",
            errors: [FieldIssue(field, reason)])
    }

    /// Maps any error thrown by a handler to the problem it means; unknown errors become a 500
    /// without internals (they are logged by `ProblemMiddleware`).
    public static func from(_ error: any Error) -> Problem {
        switch error {
        case let p as Problem: return p
        case let v as ValidationFailure: return .invalid(v.issues)
        case let s as StoreError:
            switch s {
            case let .notFound(what): return .notFound(what)
            case let .conflict(field, reason): return .conflict(field, reason)
            }
        case let h as HTTPError:
            switch h.status {
            case .notFound: return Problem(.notFound, type: "not-found", title: "No such resource")
            case .methodNotAllowed:
                return Problem(.methodNotAllowed, type: "method-not-allowed", title: "Method not allowed")
            case .contentTooLarge:
                return Problem(.contentTooLarge, type: "too-large", title: "The request body is too large")
            default:
                return Problem(h.status, type: "http-\(h.status.code)", title: h.status.reasonPhrase, detail: h.body)
            }
        case let d as DecodingError: return .decoding(d)
        case let parse as HTTPParserError:
            // A body that breaks HTTP's own framing (a bad chunk size, a connection that ends
            // inside the body): the client's fault, not a server error.
            return .badRequest("body", "is not well-formed HTTP: \(parse.debugDescription)")
        case is NIOTooManyBytesError:
            return Problem(
                .contentTooLarge, type: "too-large", title: "The request body is too large",
                detail: "The limit is 16 MiB.")
        default:
            if error.isUniqueViolation { return .conflict("body", "duplicates something already stored") }
            return Problem(.internalServerError, type: "internal", title: "Something went wrong on our side")
        }
    }

    package static func decoding(_ error: DecodingError) -> Problem {
        func path(_ keys: [any CodingKey]) -> String {
            let p = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
                .replacingOccurrences(of: ".[", with: "[")
            return p.isEmpty ? "body" : p
        }
        switch error {
        case let .keyNotFound(key, ctx):
            return .invalid([FieldIssue(path(ctx.codingPath + [key]), "is required")])
        case let .typeMismatch(type, ctx):
            return .invalid([FieldIssue(path(ctx.codingPath), "must be \(describe(type))")])
        case let .valueNotFound(type, ctx):
            return .invalid([FieldIssue(path(ctx.codingPath), "must be \(describe(type)), not null")])
        case let .dataCorrupted(ctx):
            if ctx.codingPath.isEmpty { return .badRequest("body", "is not valid JSON") }
            return .invalid([
                FieldIssue(path(ctx.codingPath), "has a value that is not allowed: \(ctx.debugDescription)")
            ])
        @unknown default:
            return .badRequest("body", "cannot be read")
        }
    }

    package static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a \(name)"
        }
    }
}

/// An error with the context of the request as the caller's resolution left it (who is signed in,
/// their language), for the error page drawn further out.
package struct ErrorInContext: Error {
    package var error: any Error
    package var context: AppContext
}

/// Renders every error as problem details (JSON for the API, a page for the console) and logs
/// the unexpected ones with the request id, so no handler can leak a stack or answer an empty 500.
package struct ProblemMiddleware: RouterMiddleware {
    package typealias Context = AppContext
    package let pages: Pages
    package init(pages: Pages) { self.pages = pages }

    package func handle(_ request: Request, context: AppContext, next: (Request, AppContext) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            var context = context
            var error = error
            if let known = error as? ErrorInContext {
                context = known.context
                error = known.error
            }
            let problem = Problem.from(error)
            if problem.status == .internalServerError {
                context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            let path = request.uri.path
            if !(path.hasPrefix("/api") || path.hasPrefix("/open311")), problem.status == .unauthorized {
                return .redirect(
                    to: "/login?next=" + (path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/"))
            }
            if path.hasPrefix("/console") || path.hasPrefix("/app") {
                return try pages.errorPage(problem, context: context)
            }
            return try problem.response(from: request, context: context)
        }
    }
}
