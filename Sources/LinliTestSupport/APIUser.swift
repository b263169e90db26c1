import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// One caller's requests against the in-process app: checks the status, returns the JSON.
package struct APIUser {
    package let client: any TestClientProtocol
    package let headers: HTTPFields

    package init(_ client: any TestClientProtocol, _ fixture: Fixture, as who: String) {
        self.client = client
        headers = HTTPFields.json.merging(fixture.bearer(who))
    }

    @discardableResult
    package func call(
        _ uri: String, _ method: HTTPRequest.Method = .get, _ body: Any? = nil, raw: String? = nil,
        expect: HTTPResponse.Status = .ok,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> [String: Any] {
        let buffer = raw.map { ByteBuffer(string: $0) } ?? body.map(jsonBody)
        return try await client.execute(uri: uri, method: method, headers: headers, body: buffer) { r in
            #expect(r.status == expect, "\(method) \(uri): \(r.status) \(r.text)", sourceLocation: sourceLocation)
            return (try? r.json()) ?? [:]
        }
    }
}
