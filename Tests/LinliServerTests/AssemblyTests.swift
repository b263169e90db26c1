import Foundation
import LinliCore
import LinliHTTP
import LinliStorage
import Testing

@testable import LinliServer

@Suite("Assembly: the document and the schema from the modules")
struct AssemblyTests {
    @Test func theDocumentIsTheBaseWithEveryModulesPart() throws {
        let document = try AppServices.openAPIDocument()
        let paths = document.split(separator: "\n").filter { $0.hasPrefix("  /") && $0.hasSuffix(":") }
        #expect(paths.count == 82)
        #expect(Set(paths).count == paths.count)
        for path in [
            "  /healthz:", "  /api/v1/session:", "  /api/v1/communities:", "  /api/v1/communities/{cid}/products:",
            "  /api/v1/communities/{cid}/rules:", "  /api/v1/communities/{cid}/work-orders:",
            "  /api/v1/communities/{cid}/notices:",
        ] {
            #expect(paths.contains(Substring(path)), "\(path) is in the document")
        }
        #expect(document.hasPrefix("openapi: 3.1.0\n") && document.hasSuffix("\n") && !document.hasSuffix("\n\n"))
    }

    @Test func partsMergeIntoTheBasesSections() throws {
        let base = "openapi: 3.1.0\npaths:\n  /a:\n    get: {}\ncomponents:\n  schemas:\n    A:\n      type: string\n"
        let part =
            "# a part\npaths:\n  /b:\n    get: {}\ncomponents:\n  schemas:\n    B:\n      type: integer\n  parameters:\n    P:\n      name: p\n"
        let merged = try OpenAPIDocument.assemble(base: base, parts: [("M", part)])
        #expect(
            merged
                == "openapi: 3.1.0\npaths:\n  /a:\n    get: {}\n  /b:\n    get: {}\ncomponents:\n  schemas:\n    A:\n      type: string\n\n    B:\n      type: integer\n  parameters:\n    P:\n      name: p\n"
        )
    }

    @Test func aPathOrComponentNamedTwiceOrAStrayKeyIsRefused() {
        let base = "openapi: 3.1.0\npaths:\n  /a:\n    get: {}\ncomponents:\n  schemas:\n    A:\n      type: string\n"
        #expect(throws: OpenAPIDocument.Fault.self) {
            try OpenAPIDocument.assemble(base: base, parts: [("M", "paths:\n  /a:\n    post: {}\n")])
        }
        #expect(throws: OpenAPIDocument.Fault.self) {
            try OpenAPIDocument.assemble(
                base: base, parts: [("M", "components:\n  schemas:\n    A:\n      type: integer\n")])
        }
        #expect(throws: OpenAPIDocument.Fault.self) {
            try OpenAPIDocument.assemble(base: base, parts: [("M", "info:\n  title: x\n")])
        }
    }

    @Test func theModulesMigrationsAreOneHistoryWithoutClashes() throws {
        let versions = Set(Schema.linli.core.map(\.version))
        #expect(versions == Set(1...Schema.linli.latest), "no gaps in the one sequence of versions")
        // The parts of 2 and 10 carry one name each, and two modules picking one number are refused.
        for version in [2, 10] {
            #expect(Set(Schema.linli.core.filter { $0.version == version }.map(\.name)).count == 1)
            #expect(Schema.linli.core.filter { $0.version == version }.count == 2)
        }
        let clash = Schema.linli + Schema(core: [Migration(version: 20, name: "visitors") { _ in [] }])
        #expect(throws: MigrationError.self) {
            _ = try clash.coreLedger.steps()
        }
    }
}
