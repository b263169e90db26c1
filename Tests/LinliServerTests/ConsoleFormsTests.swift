import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCommunity
import LinliCore
import LinliDeviceRegistry
import LinliHouseholdImport
import LinliStorage
import LinliTestSupport
import Testing

/// The console's import page with a spreadsheet's file, its template, the export for Excel, and the
/// forms that make products and devices and place them.
@Suite("Console forms: import, export, products and devices")
struct ConsoleFormsTests {
    static func multipart(_ boundary: String, _ fields: [(String, String)], file: (name: String, bytes: [UInt8])?)
        -> ByteBuffer
    {
        UploadsTests.form(boundary, fields: fields, file: file)
    }

    static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    @Test func aGBKFileGoesInThroughTheImportPageAndUnknownBuildingsWaitForTheTick() async throws {
        try await withApp { client, fixture in
            let session = try await WebTests.signIn(client, "manager")
            let c = fixture.community.id
            let sheet = "楼栋,单元,房号,姓名,身份\n新楼,1单元,101,钱多多,租户\n"
            let gbk = Array(
                try #require(
                    sheet.data(using: String.Encoding(rawValue: 0x8000_0632)),
                    "GB 18030 is there to write with"))
            #expect(gbk != Array(sheet.utf8))
            let boundary = "linli-\(UUID().uuidString)"
            func post(_ fields: [(String, String)]) async throws -> (HTTPResponse.Status, String) {
                try await client.execute(
                    uri: "/console/c/\(c)/import", method: .post,
                    headers: [.cookie: session.cookie, .contentType: "multipart/form-data; boundary=\(boundary)"],
                    body: Self.multipart(boundary, [("_csrf", session.csrf)] + fields, file: ("file", gbk))
                ) { ($0.status, $0.text) }
            }
            let (refused, page) = try await post([("mode", "all"), ("csv", "")])
            #expect(refused == .unprocessableContent)
            #expect(page.contains("class=\"problem\" data-line=\"2\" data-field=\"building\""))
            #expect(page.contains("新建不存在的楼栋和单元"))
            let (made, report) = try await post([("mode", "all"), ("createPlaces", "on")])
            #expect(made == .ok)
            #expect(report.contains("data-imported=\"true\""), "\(report)")
            let people = try await fixture.store.people(
                communityId: c, filter: PeopleFilter(query: "钱多多"),
                sort: try ListOrder(nil, allowed: [:], default: "p.id"), page: PageRequest(), scope: .everything,
                fullPhone: false)
            #expect(people.items.first?.residencies.first?.role == .tenant, "租户 read from GBK as a tenant")
            // Nothing chosen and nothing pasted: said beside the text box.
            let empty = try await client.execute(
                uri: "/console/c/\(c)/import", method: .post,
                headers: [.cookie: session.cookie, .contentType: "multipart/form-data; boundary=\(boundary)"],
                body: Self.multipart(boundary, [("_csrf", session.csrf), ("csv", "")], file: nil)
            ) { ($0.status, $0.text) }
            #expect(empty.0 == .unprocessableContent && empty.1.contains("aria-describedby=\"csv-error\""))
        }
    }

    @Test func theTemplateAndTheExportOpenInExcel() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let session = try await WebTests.signIn(client, "manager")
            for (language, header) in [("zh-CN", "楼栋,单元,房号"), ("en", "building,unit,room")] {
                let template = try await client.execute(
                    uri: "/console/c/\(c)/import/template", method: .get,
                    headers: [.cookie: session.cookie, .acceptLanguage: language]
                ) { $0 }
                #expect(template.status == .ok)
                let bytes = Array(template.body.readableBytesView)
                #expect(Array(bytes.prefix(3)) == Self.bom)
                let text = String(decoding: bytes.dropFirst(3), as: UTF8.self)
                #expect(text.hasPrefix(header))
                let parsed = HouseholdSheet.parse(text)
                #expect(parsed.problems.isEmpty && parsed.lines.count == 1, "the template's example row is valid")
            }
            let guardSession = try await WebTests.signIn(client, "guard")
            let refused = try await client.execute(
                uri: "/console/c/\(c)/import/template", method: .get, headers: [.cookie: guardSession.cookie]
            ) { $0.status }
            #expect(refused == .forbidden)

            let uri = "/api/v1/communities/\(c)/households/export"
            let masked = try await client.execute(uri: uri, method: .get, headers: fixture.bearer("staff")) { $0 }
            #expect(masked.status == .ok)
            #expect(Array(masked.body.readableBytesView.prefix(3)) == Self.bom)
            #expect(masked.text.contains("*"), "identity numbers masked")
            // Staff may export but not reveal: no whole numbers for them.
            let staffFull = try await client.execute(
                uri: uri + "?identity=full", method: .get, headers: fixture.bearer("staff")
            ) { $0.status }
            #expect(staffFull == .forbidden)
            let full = try await client.execute(
                uri: uri + "?identity=full", method: .get, headers: fixture.bearer("manager")
            ) { $0 }
            #expect(full.status == .ok)
            let fullText = String(decoding: full.body.readableBytesView.dropFirst(3), as: UTF8.self)
            #expect(!fullText.contains("*"))
            let audited = try await fixture.store.read { db in
                try await db.count(
                    "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'households.exported.identity' AND community_id = \(bind: c)"
                )
            }
            #expect(audited == 1)
            // The page offers the whole-number export to who may take it.
            let managerPage = try await client.execute(
                uri: "/console/c/\(c)/households", method: .get, headers: [.cookie: session.cookie]
            ) { $0.text }
            #expect(managerPage.contains("id=\"households-export-identity\""))
            let staff = try await WebTests.signIn(client, "staff")
            let staffPage = try await client.execute(
                uri: "/console/c/\(c)/households", method: .get, headers: [.cookie: staff.cookie]
            ) { $0.text }
            #expect(staffPage.contains("id=\"households-export\"") && !staffPage.contains("households-export-identity"))
            // The whole export goes back in with nothing to fix.
            var csvHeaders = fixture.bearer("manager")
            csvHeaders[.contentType] = "text/csv"
            let back = try await client.execute(
                uri: "/api/v1/communities/\(c)/households/import?dryRun=true&createPlaces=false", method: .post,
                headers: csvHeaders,
                body: ByteBuffer(bytes: Array(full.body.readableBytesView))
            ) { $0.text }
            #expect(back.contains("\"problems\":[]"), "\(back.prefix(400))")
        }
    }

    @Test func productsAndDevicesAreMadeAndPlacedFromTheConsole() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = try await WebTests.signIn(client, "staff")
            let guardSession = try await WebTests.signIn(client, "guard")
            // Who cannot manage devices sees no buttons and reaches no form.
            let guardList = try await client.execute(
                uri: "/console/c/\(c)/devices", method: .get, headers: [.cookie: guardSession.cookie]
            ) { $0.text }
            #expect(!guardList.contains("id=\"new-device\""))
            for path in ["products/new", "devices/new"] {
                let status = try await client.execute(
                    uri: "/console/c/\(c)/\(path)", method: .get, headers: [.cookie: guardSession.cookie]
                ) { $0.status }
                #expect(status == .forbidden, "\(path)")
            }
            let list = try await client.execute(
                uri: "/console/c/\(c)/devices", method: .get, headers: [.cookie: staff.cookie]
            ) { $0.text }
            #expect(list.contains("id=\"new-product\"") && list.contains("id=\"new-device\""))

            let boundary = "linli-\(UUID().uuidString)"
            func product(_ fields: [(String, String)], tsl: [UInt8]? = nil) async throws -> TestResponse {
                try await client.execute(
                    uri: "/console/c/\(c)/products/new", method: .post,
                    headers: [.cookie: staff.cookie, .contentType: "multipart/form-data; boundary=\(boundary)"],
                    body: Self.multipart(boundary, [("_csrf", staff.csrf)] + fields, file: tsl.map { ("tsl", $0) })
                ) { $0 }
            }
            let noChoice = try await product([("source", "library"), ("library", ""), ("name", "留着的名字")])
            #expect(noChoice.status == .unprocessableContent)
            #expect(noChoice.text.contains("aria-describedby=\"library-error\""))
            #expect(noChoice.text.contains("value=\"留着的名字\""), "what was typed is kept")
            let badTSL = try await product(
                [("source", "tsl")],
                tsl: Array(
                    #"{"properties":[{"identifier":"t","name":"t","accessMode":"r","dataType":{"type":"nope"}}]}"#.utf8)
            )
            #expect(badTSL.status == .unprocessableContent)
            #expect(
                badTSL.text.contains("id=\"tsl-error\"") && badTSL.text.contains("$.properties[0]"), "\(badTSL.text)")
            let notJSON = try await product([("source", "tsl")], tsl: Array("not json".utf8))
            #expect(notJSON.status == .unprocessableContent && notJSON.text.contains("不是有效的 JSON"))
            let made = try await product([("source", "library"), ("library", "smoke_detector")])
            #expect(made.status == .seeOther)
            let location = made.headers[.location] ?? ""
            #expect(location.hasPrefix("/console/products/"))
            let pk = String(location.dropFirst("/console/products/".count))
            let stored = try #require(try await fixture.store.product(key: pk))
            #expect(stored.communityId == c && stored.name == "烟雾报警器" && stored.libraryKey == "smoke_detector")

            let household = try await fixture.store.household(fixture.outsideHousehold, scope: .everything)
            func device(_ form: String, session: (cookie: String, csrf: String, location: String)? = nil)
                async throws -> TestResponse
            {
                let s = session ?? staff
                return try await client.execute(
                    uri: "/console/c/\(c)/devices/new", method: .post,
                    headers: [.cookie: s.cookie, .contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: "_csrf=\(s.csrf)&" + form)
                ) { $0 }
            }
            let badName = try await device("productKey=\(pk)&deviceName=bad%20name%21&nickname=%E7%83%9F%E6%84%9F")
            #expect(badName.status == .unprocessableContent)
            #expect(badName.text.contains("aria-describedby=\"deviceName-error\""))
            #expect(badName.text.contains("value=\"bad name!\"") && badName.text.contains("value=\"烟感\""))
            let roomAlone = try await device("productKey=\(pk)&deviceName=smoke-1&room=\(household.room)")
            #expect(roomAlone.status == .unprocessableContent && roomAlone.text.contains("id=\"room-error\""))
            let noRoom = try await device("productKey=\(pk)&deviceName=smoke-1&unitId=\(household.unitId)&room=no-such")
            #expect(noRoom.status == .unprocessableContent && noRoom.text.contains("id=\"room-error\""))
            let guardTry = try await device("productKey=\(pk)&deviceName=smoke-9", session: guardSession)
            #expect(guardTry.status == .forbidden)

            let created = try await device(
                "productKey=\(pk)&deviceName=smoke-1&nickname=%E7%83%9F%E6%84%9F&unitId=\(household.unitId)&room=\(household.room)&location=%E5%8E%A8%E6%88%BF"
            )
            #expect(created.status == .created)
            #expect(created.headers[.cacheControl] == "no-store")
            let d = try #require(try await fixture.store.device(productKey: pk, deviceName: "smoke-1"))
            #expect(
                d.householdId == household.id && d.unitId == household.unitId && d.buildingId == household.buildingId)
            #expect(d.nickname == "烟感" && d.location == "厨房")
            let secret = try fixture.store.deviceSecret(d)
            #expect(created.text.contains("id=\"triple-device-secret\">\(secret)<"))
            #expect(created.text.contains("只显示这一次"))
            #expect(d.secretCipher != secret, "the secret is stored encrypted")
            // Never again: the device's page and its edit form do not hold it.
            let devicePage = try await client.execute(
                uri: "/console/d/\(pk)/smoke-1", method: .get, headers: [.cookie: staff.cookie]
            ) { $0.text }
            #expect(!devicePage.contains(secret))
            #expect(devicePage.contains("id=\"edit-device\"") && devicePage.contains(household.room))
            let taken = try await device("productKey=\(pk)&deviceName=smoke-1")
            #expect(taken.status == .unprocessableContent && taken.text.contains("id=\"deviceName-error\""))

            // The place and nickname changed from the device's page.
            let edit = "/console/d/\(pk)/smoke-1/edit"
            let form = try await client.execute(uri: edit, method: .get, headers: [.cookie: staff.cookie]) { $0.text }
            #expect(form.contains("value=\"\(household.room)\"") && form.contains("value=\"厨房\""))
            let bad = try await client.execute(
                uri: edit, method: .post,
                headers: [.cookie: staff.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "_csrf=\(staff.csrf)&nickname=x&unitId=not-a-unit")
            ) { $0 }
            #expect(bad.status == .unprocessableContent && bad.text.contains("id=\"unitId-error\""))
            let saved = try await client.execute(
                uri: edit, method: .post,
                headers: [.cookie: staff.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(
                    string: "_csrf=\(staff.csrf)&nickname=%E8%BD%A6%E5%BA%93%E7%83%9F%E6%84%9F&location=B2")
            ) { $0 }
            #expect(saved.status == .seeOther && saved.headers[.location] == "/console/d/\(pk)/smoke-1")
            let moved = try #require(try await fixture.store.device(productKey: pk, deviceName: "smoke-1"))
            #expect(
                moved.nickname == "车库烟感" && moved.location == "B2" && moved.householdId == nil && moved.unitId == nil)
            let guardEdit = try await client.execute(
                uri: edit, method: .post,
                headers: [.cookie: guardSession.cookie, .contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "_csrf=\(guardSession.csrf)&nickname=x")
            ) { $0.status }
            #expect(guardEdit == .forbidden)
        }
    }

    /// The new forms, their refusals, the triple's page and the device and product pages they lead
    /// to: one language each, Chinese or English.
    @Test func theFormsAndThePagesTheyLeadToSpeakOneLanguage() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let staff = try await WebTests.signIn(client, "staff")
            // A gateway product with a placed device, made through the API.
            var json = fixture.bearer("staff")
            json[.contentType] = "application/json"
            let pk = try await client.execute(
                uri: "/api/v1/communities/\(c)/products", method: .post, headers: json,
                body: ByteBuffer(string: #"{"library":"environment_sensor","dynamicRegistration":true}"#)
            ) { r in
                #expect(r.status == .created)
                return r.text.components(separatedBy: "\"productKey\":\"").dropFirst().first?
                    .components(separatedBy: "\"").first ?? ""
            }
            let household = try await fixture.store.household(fixture.outsideHousehold, scope: .everything)
            let made = try await client.execute(
                uri: "/api/v1/communities/\(c)/devices", method: .post, headers: json,
                body: ByteBuffer(
                    string:
                        #"{"productKey":"\#(pk)","deviceName":"env-1","nickname":"环境","householdId":"\#(household.id)","unitId":"\#(household.unitId)","buildingId":"\#(household.buildingId)","location":"屋顶","reportIntervalSeconds":60}"#
                )
            ) { $0.status }
            #expect(made == .created)
            let device = try #require(try await fixture.store.device(productKey: pk, deviceName: "env-1"))
            let product = try #require(try await fixture.store.product(key: pk))
            var data = try await LanguageCommunityTests.data(fixture.store)
            for p in try await fixture.store.products(communityId: c) { data += [p.name, p.productKey] }
            data += [device.deviceName, device.nickname, device.location].filter { !$0.isEmpty }
            // The thing model's identifiers, names and types, and the event log's types, are the product's own.
            let model = try #require(product.thingModel)
            data += model.properties.flatMap { [$0.identifier, $0.name, $0.dataType.typeName] }
            data +=
                model.events.flatMap { [$0.identifier, $0.name] } + model.services.flatMap { [$0.identifier, $0.name] }
            data += ["device.registered", "property.set", "default"]
            data.sort { $0.count > $1.count }
            let boundary = "linli-\(UUID().uuidString)"
            for language in [Language.zh, .en] {
                let accept = language == .zh ? "zh-CN,zh;q=0.9" : "en-US,en;q=0.9"
                let dn = device.deviceName
                for path in [
                    "/console/c/\(c)/devices", "/console/c/\(c)/products/new", "/console/c/\(c)/devices/new",
                    "/console/d/\(pk)/\(dn)", "/console/d/\(pk)/\(dn)/edit", "/console/products/\(pk)",
                    "/console/c/\(c)/import",
                ] {
                    let html = try await client.execute(
                        uri: path, method: .get, headers: [.cookie: staff.cookie, .acceptLanguage: accept]
                    ) { r in
                        #expect(r.status == .ok, "\(path)")
                        return r.text
                    }
                    LanguageCommunityTests.check(html, language, data, page: path)
                }
                let refusedProduct = try await client.execute(
                    uri: "/console/c/\(c)/products/new", method: .post,
                    headers: [
                        .cookie: staff.cookie, .acceptLanguage: accept,
                        .contentType: "multipart/form-data; boundary=\(boundary)",
                    ],
                    body: Self.multipart(boundary, [("_csrf", staff.csrf), ("source", "tsl")], file: nil)
                ) { $0.text }
                LanguageCommunityTests.check(refusedProduct, language, data, page: "the refused product")
                let name = "lang-\(language.rawValue)"
                for form in [
                    "productKey=&deviceName=bad%20name&room=1", "productKey=\(pk)&deviceName=\(name)",
                ] {
                    let page = try await client.execute(
                        uri: "/console/c/\(c)/devices/new", method: .post,
                        headers: [
                            .cookie: staff.cookie, .acceptLanguage: accept,
                            .contentType: "application/x-www-form-urlencoded",
                        ],
                        body: ByteBuffer(string: "_csrf=\(staff.csrf)&" + form)
                    ) { $0.text }
                    // The triple is the device's own: data, as its name is.
                    let secret =
                        page.components(separatedBy: "id=\"triple-device-secret\">").dropFirst().first?
                        .components(separatedBy: "<").first ?? ""
                    LanguageCommunityTests.check(
                        page, language, data + [name, "bad name", secret].filter { !$0.isEmpty }, page: form)
                }
            }
        }
    }
}
