import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// Open311 GeoReport v2 at /open311/v2/: third-party reporters (a city's app, a hotline system)
/// file work orders with an API key and follow them. A jurisdiction is a community; a service is a
/// work order category. Every answer comes as JSON or XML by the path's extension, errors included.
///
/// Reading requests needs no key, as the specification has it, so only what is public is shown:
/// requests that came in through Open311, without who reported them.
struct Open311 {
    let services: AppServices
    var store: Store { services.store }

    func register(_ router: Router<AppContext>) {
        router.get("/open311/v2/:resource", use: resource)
        router.post("/open311/v2/:resource", use: postRequest)
        router.get("/open311/v2/services/:file", use: serviceDefinition)
        router.get("/open311/v2/requests/:file", use: request)
        router.get("/open311/v2/tokens/:file", use: token)
    }

    enum Format: String { case json, xml }

    struct Failure: Error {
        var status: HTTPResponse.Status
        var description: String
    }

    /// "requests.json" → ("requests", .json); anything else is a 404 in JSON.
    func split(_ file: String) throws -> (String, Format) {
        guard let dot = file.lastIndex(of: "."),
            let format = Format(rawValue: String(file[file.index(after: dot)...]).lowercased())
        else {
            throw Failure(status: .notFound, description: "add .json or .xml to the path")
        }
        return (String(file[..<dot]), format)
    }

    /// Runs a handler and answers its failures the Open311 way: `[{"code": 400, "description": …}]`.
    func answer(_ format: Format?, _ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch let failure as Failure {
            return render(
                [["code": .int(Int(failure.status.code)), "description": .text(failure.description)]], root: "errors",
                item: "error",
                format: format ?? .json, status: failure.status)
        } catch {
            return render(
                [["code": .int(500), "description": .text("the request could not be handled")]], root: "errors",
                item: "error",
                format: format ?? .json, status: .internalServerError)
        }
    }

    // MARK: rendering

    enum Value {
        case text(String), int(Int), double(Double), bool(Bool), null
        case list(String, [String])  // XML: <keywords><keyword>…
    }

    func render(
        _ items: [[String: Value]], root: String, item: String, format: Format, status: HTTPResponse.Status = .ok,
        order: [String]? = nil
    ) -> Response {
        switch format {
        case .json:
            func json(_ v: Value) -> Any {
                switch v {
                case let .text(s): s
                case let .int(i): i
                case let .double(d): d
                case let .bool(b): b
                case .null: NSNull()
                case let .list(_, values): values.joined(separator: ",")
                }
            }
            let objects = items.map { $0.mapValues(json) }
            let data =
                (try? JSONSerialization.data(withJSONObject: objects, options: [.sortedKeys, .withoutEscapingSlashes]))
                ?? Data("[]".utf8)
            return Response(
                status: status, headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: data)))
        case .xml:
            var xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<\(root)>"
            for object in items {
                xml += "<\(item)>"
                for key in order ?? object.keys.sorted() {
                    guard let value = object[key] else { continue }
                    switch value {
                    case let .text(s): xml += "<\(key)>\(Self.escape(s))</\(key)>"
                    case let .int(i): xml += "<\(key)>\(i)</\(key)>"
                    case let .double(d): xml += "<\(key)>\(d)</\(key)>"
                    case let .bool(b): xml += "<\(key)>\(b)</\(key)>"
                    case .null: xml += "<\(key)/>"
                    case let .list(element, values):
                        xml +=
                            "<\(key)>" + values.map { "<\(element)>\(Self.escape($0))</\(element)>" }.joined()
                            + "</\(key)>"
                    }
                }
                xml += "</\(item)>"
            }
            xml += "</\(root)>\n"
            return Response(
                status: status, headers: [.contentType: "text/xml; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: xml)))
        }
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;"
        )
        .replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func isoTime(_ millis: Millis?) -> Value {
        guard let millis else { return .null }
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "Asia/Shanghai")
        f.formatOptions = [.withInternetDateTime]
        return .text(f.string(from: Date(timeIntervalSince1970: Double(millis) / 1000)))
    }

    static func parseTime(_ text: String?) -> Millis?? {
        guard let text, !text.isEmpty else { return .some(nil) }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        guard let date = f.date(from: text) else { return nil }
        return .some(Millis(date.timeIntervalSince1970 * 1000))
    }

    // MARK: resources

    @Sendable func resource(_ request: Request, context: AppContext) async throws -> Response {
        let file = try context.parameters.require("resource")
        let format = try? split(file).1
        return await answer(format) {
            let (name, format) = try split(file)
            switch name {
            case "discovery": return try await discovery(request, format)
            case "services": return try await serviceList(request, format)
            case "requests": return try await requestList(request, format)
            default: throw Failure(status: .notFound, description: "no such resource: \(name)")
            }
        }
    }

    /// The discovery document, with the jurisdictions a client may name (a Linli addition the
    /// specification leaves room for: it has no list of them) and how to get an API key.
    func discovery(_ request: Request, _ format: Format) async throws -> Response {
        let jurisdictions = try await store.communities(scope: .everything, memberships: [])
        let base =
            "http://\(request.head.authority ?? "\(services.configuration.host):\(services.configuration.port)")/open311/v2/"
        let endpoint: [String: Value] = [
            "specification": .text("http://wiki.open311.org/GeoReport_v2"), "url": .text(base),
            "changeset": .text("2026-11-30T00:00:00+08:00"),
            "type": .text("production"), "formats": .list("format", ["application/json", "text/xml"]),
        ]
        switch format {
        case .json:
            let object: [String: Any] = [
                "changeset": "2026-11-30T00:00:00+08:00", "contact": "The community's property office",
                "key_service": Self.keyService,
                "jurisdictions": jurisdictions.map { ["jurisdiction_id": $0.id, "name": $0.name] },
                "endpoints": [
                    [
                        "specification": "http://wiki.open311.org/GeoReport_v2", "url": base,
                        "changeset": "2026-11-30T00:00:00+08:00",
                        "type": "production", "formats": ["application/json", "text/xml"],
                    ]
                ],
            ]
            let data =
                (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
                ?? Data()
            return Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: data)))
        case .xml:
            var xml =
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<discovery><changeset>2026-11-30T00:00:00+08:00</changeset><contact>The community's property office</contact>"
            xml +=
                "<key_service>\(Self.escape(Self.keyService))</key_service><jurisdictions>"
                + jurisdictions.map {
                    "<jurisdiction><jurisdiction_id>\(Self.escape($0.id))</jurisdiction_id><name>\(Self.escape($0.name))</name></jurisdiction>"
                }.joined() + "</jurisdictions><endpoints><endpoint>"
            for key in ["specification", "url", "changeset", "type"] {
                if case let .text(s)? = endpoint[key] { xml += "<\(key)>\(Self.escape(s))</\(key)>" }
            }
            xml +=
                "<formats><format>application/json</format><format>text/xml</format></formats></endpoint></endpoints></discovery>\n"
            return Response(
                status: .ok, headers: [.contentType: "text/xml; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: xml)))
        }
    }

    /// How a reporter gets a key: the command the community's operator runs.
    static let keyService =
        "Ask the community's property office for an API key; its operator makes one with `linli open311 key --name <who it is for>`"

    /// The community a request is about: the key's, or `jurisdiction_id` (a community id); without
    /// one, the only community there is. With several, the error names them.
    func jurisdiction(_ request: Request, key: (id: ID, communityId: ID)? = nil, fields: [String: String] = [:])
        async throws -> Community
    {
        let given = fields["jurisdiction_id"] ?? request.uri.queryParameters.get("jurisdiction_id").map { String($0) }
        if let key {
            if let given, !given.isEmpty, given != key.communityId {
                throw Failure(status: .forbidden, description: "the api_key is not for jurisdiction \(given)")
            }
            return try await store.community(key.communityId, scope: .everything, memberships: [])
        }
        guard let given, !given.isEmpty else {
            let all = try await store.communities(scope: .everything, memberships: [])
            if all.count == 1 { return all[0] }
            let choices = all.prefix(20).map { "\($0.id) (\($0.name))" }.joined(separator: ", ")
            throw Failure(
                status: .badRequest,
                description: all.isEmpty
                    ? "no jurisdiction is served here yet"
                    : "jurisdiction_id is required: one of \(choices)\(all.count > 20 ? ", …" : "") (the discovery document lists them all)"
            )
        }
        guard let community = try? await store.community(given, scope: .everything, memberships: []) else {
            throw Failure(status: .notFound, description: "no jurisdiction \(given)")
        }
        return community
    }

    static func service(_ c: WorkOrderCategory) -> [String: Value] {
        [
            "service_code": .text(c.rawValue), "service_name": .text(c.name),
            "description": .text(
                "\(c.name): handled within \(c.defaultDeadlineHours) hours unless the community sets otherwise"),
            "metadata": .bool(false), "type": .text("realtime"), "keywords": .list("keyword", [c.rawValue]),
            "group": .text("community"),
        ]
    }

    func serviceList(_ request: Request, _ format: Format) async throws -> Response {
        _ = try await jurisdiction(request)
        return render(WorkOrderCategory.allCases.map(Self.service), root: "services", item: "service", format: format)
    }

    @Sendable func serviceDefinition(_ request: Request, context: AppContext) async throws -> Response {
        let file = try context.parameters.require("file")
        return await answer(try? split(file).1) {
            let (code, format) = try split(file)
            _ = try await jurisdiction(request)
            guard WorkOrderCategory(rawValue: code) != nil else {
                throw Failure(status: .notFound, description: "no service \(code)")
            }
            // No service asks for extra attributes (metadata is false); the definition says so.
            switch format {
            case .json:
                return Response(
                    status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: "{\"attributes\":[],\"service_code\":\"\(code)\"}")))
            case .xml:
                return Response(
                    status: .ok, headers: [.contentType: "text/xml; charset=utf-8"],
                    body: .init(
                        byteBuffer: ByteBuffer(
                            string:
                                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_definition><service_code>\(code)</service_code><attributes/></service_definition>\n"
                        )))
            }
        }
    }

    static let requestFields = [
        "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
        "agency_responsible", "service_notice",
        "requested_datetime", "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
        "long", "media_url",
    ]

    func view(_ o: WorkOrder, notes: [ID: String], organisations: [ID: String]) -> [String: Value] {
        let open = ![.resolved, .closed, .rejected].contains(o.status)
        return [
            "service_request_id": .text(o.id), "status": .text(open ? "open" : "closed"),
            "status_notes": notes[o.id].map { .text($0) } ?? .null,
            "service_name": .text(o.category.name), "service_code": .text(o.category.rawValue),
            "description": .text(o.description.isEmpty ? o.title : o.description),
            "agency_responsible": o.organisationId.flatMap { organisations[$0] }.map { .text($0) } ?? .null,
            "service_notice": .text("No. \(o.number)"),
            "requested_datetime": Self.isoTime(o.createdAt), "updated_datetime": Self.isoTime(o.updatedAt),
            "expected_datetime": Self.isoTime(o.dueAt),
            "address": .text(o.location), "address_id": .null, "zipcode": .null,
            "lat": o.lat.map { .double($0) } ?? .null, "long": o.lon.map { .double($0) } ?? .null,
            "media_url": o.mediaUrl.map { .text($0) } ?? .null,
        ]
    }

    func renderRequests(_ orders: [WorkOrder], _ format: Format) async throws -> Response {
        let notes = try await store.latestNotes(orders.map(\.id))
        var organisations: [ID: String] = [:]
        for communityId in Set(orders.map(\.communityId)) {
            for o in try await store.organisations(communityId: communityId, scope: .everything) {
                organisations[o.id] = o.name
            }
        }
        return render(
            orders.map { view($0, notes: notes, organisations: organisations) }, root: "service_requests",
            item: "request", format: format, order: Self.requestFields)
    }

    func requestList(_ request: Request, _ format: Format) async throws -> Response {
        let community = try await jurisdiction(request)
        let q = request.uri.queryParameters
        let ids = q.get("service_request_id").map {
            $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        if let ids, ids.count > 100 {
            throw Failure(status: .badRequest, description: "at most 100 service_request_id values")
        }
        var category: WorkOrderCategory? = nil
        if let code = q.get("service_code"), !code.isEmpty {
            guard let c = WorkOrderCategory(rawValue: String(code)) else {
                throw Failure(status: .badRequest, description: "service_code \(code) is not a service")
            }
            category = c
        }
        guard let from = Self.parseTime(q.get("start_date").map { String($0) }) else {
            throw Failure(status: .badRequest, description: "start_date must be a w3 date time")
        }
        guard let to = Self.parseTime(q.get("end_date").map { String($0) }) else {
            throw Failure(status: .badRequest, description: "end_date must be a w3 date time")
        }
        var open: Bool? = nil
        if let status = q.get("status"), !status.isEmpty {
            let wanted = Set(status.split(separator: ",").map { String($0) })
            guard wanted.isSubset(of: ["open", "closed"]) else {
                throw Failure(status: .badRequest, description: "status must be open, closed, or both")
            }
            open = wanted.count == 1 ? wanted.contains("open") : nil
        }
        // Without ids or dates, the specification's default: the last 90 days, at most 1000.
        let since = ids == nil && from == nil && to == nil ? nowMillis() - 90 * 86_400_000 : from
        let orders = try await store.open311Requests(
            communityId: community.id, ids: ids, category: category, from: since, to: to, open: open, limit: 1_000)
        return try await renderRequests(orders, format)
    }

    @Sendable func request(_ request: Request, context: AppContext) async throws -> Response {
        let file = try context.parameters.require("file")
        return await answer(try? split(file).1) {
            let (id, format) = try split(file)
            let community = try await jurisdiction(request)
            let orders = try await store.open311Requests(
                communityId: community.id, ids: [id], category: nil, from: nil, to: nil, open: nil, limit: 1)
            guard !orders.isEmpty else { throw Failure(status: .notFound, description: "no service request \(id)") }
            return try await renderRequests(orders, format)
        }
    }

    /// Requests are filed at once, so a token is the request's id and resolves to itself.
    @Sendable func token(_ request: Request, context: AppContext) async throws -> Response {
        let file = try context.parameters.require("file")
        return await answer(try? split(file).1) {
            let (token, format) = try split(file)
            let community = try await jurisdiction(request)
            guard
                try await !store.open311Requests(
                    communityId: community.id, ids: [token], category: nil, from: nil, to: nil, open: nil, limit: 1
                ).isEmpty
            else {
                throw Failure(status: .notFound, description: "no token \(token)")
            }
            return render(
                [["service_request_id": .text(token), "token": .text(token)]], root: "service_requests",
                item: "request", format: format)
        }
    }

    /// POST requests: files a work order from the form fields the specification names.
    @Sendable func postRequest(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let file = try context.parameters.require("resource")
        return await answer(try? split(file).1) {
            let (name, format) = try split(file)
            guard name == "requests" else { throw Failure(status: .notFound, description: "POST goes to requests") }
            let fields = try await request.formFields(context: context)
            guard let apiKey = fields["api_key"], !apiKey.isEmpty, let key = try await store.open311Key(apiKey) else {
                throw Failure(status: .forbidden, description: "api_key is missing or not valid")
            }
            let community = try await jurisdiction(request, key: key, fields: fields)
            guard let code = fields["service_code"], let category = WorkOrderCategory(rawValue: code) else {
                throw Failure(
                    status: .badRequest,
                    description:
                        "service_code is required: one of \(WorkOrderCategory.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            var lat: Double? = nil
            var lon: Double? = nil
            if let la = fields["lat"], !la.isEmpty || !(fields["long"] ?? "").isEmpty {
                guard let a = Double(la), let o = Double(fields["long"] ?? ""), (-90...90).contains(a),
                    (-180...180).contains(o)
                else {
                    throw Failure(
                        status: .badRequest, description: "lat and long must be a WGS-84 position, given together")
                }
                (lat, lon) = (a, o)
            }
            let address = (fields["address_string"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard lat != nil || !address.isEmpty || !(fields["address_id"] ?? "").isEmpty else {
                throw Failure(
                    status: .badRequest,
                    description: "a location is required: lat and long, address_string or address_id")
            }
            let description = (fields["description"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard description.count <= 4_000 else {
                throw Failure(status: .badRequest, description: "description: at most 4000 characters")
            }
            guard address.count <= 200 else {
                throw Failure(status: .badRequest, description: "address_string: at most 200 characters")
            }
            let media = fields["media_url"].flatMap { $0.isEmpty ? nil : $0 }
            if let media,
                URL(string: media)?.scheme.map({ ["http", "https"].contains($0.lowercased()) }) != true
                    || media.count > 500
            {
                throw Failure(status: .badRequest, description: "media_url must be an http or https URL")
            }
            let person = [fields["first_name"], fields["last_name"]].compactMap { $0 }.filter { !$0.isEmpty }.joined(
                separator: " ")
            let title = String((description.isEmpty ? category.name : description).prefix(60))
            let order = try await store.submitWorkOrder(
                WorkOrderReport(
                    communityId: community.id, category: category, title: title, description: description,
                    source: .open311, reporterAccountId: nil,
                    reporterName: String((person.isEmpty ? "Open311" : person).prefix(100)),
                    reporterPhone: String((fields["phone"] ?? "").prefix(40)),
                    location: address, alarmId: nil, lat: lat, lon: lon, mediaUrl: media,
                    reporterEmail: String((fields["email"] ?? "").prefix(200)),
                    open311KeyId: key.id),
                actor: Principal(accountId: nil, name: "Open311 key \(key.id.prefix(8))"))
            return render(
                [
                    [
                        "service_request_id": .text(order.id),
                        "service_notice": .text("No. \(order.number); expected by \(Self.isoTimeText(order.dueAt))"),
                        "account_id": .null,
                    ]
                ], root: "service_requests", item: "request", format: format, status: .created)
        }
    }

    static func isoTimeText(_ millis: Millis) -> String {
        if case let .text(s) = isoTime(millis) { return s }
        return ""
    }
}
