import Foundation
import HTTPTypes
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

extension API {
    func register(_ api: RouterGroup<AppContext>) {
        api.post("communities/:cid/households/import", use: importHouseholds)
        api.get("communities/:cid/households/export", use: exportHouseholds)
    }

    struct ImportRefused: Encodable {
        var type = "https://linli.dev/problems/import-invalid"
        var title = "Some rows are invalid; nothing was imported"
        var status = 422
        var errors: [FieldIssue]
        var report: ImportReport
    }

    @Sendable func importHouseholds(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .importData)
        try requireCovers(scope, community.id, .importData)
        var q = QueryReader(request)
        let mode = q.string("mode") ?? "all"
        if !["all", "valid"].contains(mode) { q.issues.append(FieldIssue("mode", "must be all or valid")) }
        let dryRun = q.bool("dryRun")
        // Scripts that load a new community make its buildings: the API makes them unless told not to.
        let createPlaces = q.string("createPlaces").map { $0 != "false" } ?? true
        try q.check()
        // Read whole, unlike photos and firmware (streamed to disk): the sheet is parsed and
        // checked as a whole before one row is stored, and its 16 MiB limit (a few tens of
        // thousands of households) counts in full against the shared body budget while it is read.
        let body = try await request.readBody(upTo: BodyLimit.upload)
        if body.readableBytes == 0 {
            throw Problem.badRequest("body", "must be a CSV file (UTF-8 or GB18030) with a header row")
        }
        let text: String
        do { text = try CSV.text(spreadsheet: Array(body.readableBytesView)).text } catch {
            throw Problem.badRequest("body", "cannot be read: \(error.description)")
        }
        let report = try await store.importHouseholds(
            communityId: community.id, csv: text, onlyValid: mode == "valid", dryRun: dryRun,
            createPlaces: createPlaces, actor: context.principal)
        if !report.imported, !report.problems.isEmpty, !dryRun {
            let refused = ImportRefused(
                errors: report.problems.map { FieldIssue("line \($0.line): \($0.field)", $0.reason) }, report: report)
            var response = try JSON.response(refused, status: .unprocessableContent)
            response.headers[.contentType] = "application/problem+json"
            return response
        }
        return try JSON.response(report)
    }

    @Sendable func exportHouseholds(_ request: Request, context: AppContext) async throws -> Response {
        let (community, scope) = try await self.community(context, .exportData)
        var q = QueryReader(request)
        let identity = q.string("identity") ?? "masked"
        if !["masked", "full"].contains(identity) {
            q.issues.append(FieldIssue("identity", "must be masked or full"))
        }
        try q.check()
        // Whole identity numbers only for who may reveal them on the person page, across the community.
        if identity == "full" { try requireCovers(try context.scope(.revealIdentity), community.id, .revealIdentity) }
        let csv = try await store.exportHouseholds(
            communityId: community.id, scope: scope, fullIdentity: identity == "full", actor: context.principal)
        try await store.write { db in
            try await AuditLog.record(
                db, actor: context.principal, action: "households.exported", subjectType: "community",
                subjectId: community.id, communityId: community.id)
        }
        return Self.spreadsheet(csv, filename: "households.csv")
    }

    /// A CSV file for a spreadsheet: with a UTF-8 byte order mark, without which Excel reads the
    /// Chinese in it as the local code page.
    static func spreadsheet(_ csv: String, filename: String) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(filename)\"",
                .cacheControl: "no-store",
            ],
            body: .init(byteBuffer: ByteBuffer(string: CSV.byteOrderMark + csv)))
    }
}
