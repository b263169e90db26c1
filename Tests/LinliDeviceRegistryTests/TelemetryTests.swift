import Foundation
import LinliCore
import LinliServer
import LinliTestSupport
import SQLKit
import Testing

@testable import LinliCommunity
@testable import LinliDeviceRegistry
@testable import LinliHTTP
@testable import LinliStorage

@Suite("Devices and telemetry on every engine")
struct TelemetryTests {
    static let tsl =
        #"{"properties":[{"identifier":"Temp","name":"T","accessMode":"rw","dataType":{"type":"float","specs":{"min":"-40","max":"120"}}}],"events":[],"services":[]}"#

    func makeDevices(_ store: Store, _ place: Place, count: Int = 2) async throws -> [Device] {
        let product = Product(
            communityId: place.community.id, productKey: Product.newKey(), name: "Thermometer", libraryKey: nil,
            tslJson: Self.tsl)
        try await store.createProduct(product, actor: tester)
        var placement = DevicePlacement()
        placement.buildingId = place.building.id
        placement.reportIntervalSeconds = 60
        return try await store.registerDevices(
            product: product, (0..<count).map { ("t-\($0)", placement) }, actor: tester
        ).map(\.0)
    }

    func report(_ d: Device, _ content: DeviceReport.Content, at: Millis = nowMillis()) -> DeviceReport {
        DeviceReport(
            deviceId: d.id, communityId: d.communityId, productKey: d.productKey, deviceName: d.deviceName,
            receivedAt: at, content: content)
    }

    @Test(arguments: TestEngine.available)
    func shadowDocumentChangesRaceWithoutLosingAny(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let device = try #require(try await makeDevices(store, place, count: 1).first)
            #expect(try await store.shadowDocument(device) == nil)
            // 30 changes at once, each adding one to what it read: any two computed from the same
            // read would lose one; the losers must run again on top of the winner.
            let versions = try await withThrowingTaskGroup(of: Int64.self) { group in
                for _ in 0..<30 {
                    group.addTask {
                        let stored = try await store.changeShadowDocument(device, actor: nil) { json in
                            let n = json.flatMap { Int64($0) } ?? 0
                            return (String(n + 1), n + 1)
                        }
                        return try #require(Int64(stored))
                    }
                }
                return try await group.reduce(into: [Int64]()) { $0.append($1) }
            }
            #expect(Set(versions) == Set(1...30))
            #expect(try await store.shadowDocument(device) == "30")

            // A refused change leaves the document as it was; a change by a person is logged.
            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await store.changeShadowDocument(device, actor: nil) { _ in throw Refused() }
            }
            #expect(try await store.shadowDocument(device) == "30")
            try await store.changeShadowDocument(device, actor: tester) { _ in (#"{"version":31}"#, 31) }
            struct Logged: Decodable {
                var type: String
                var subjectId: String
            }
            let logged = try await store.read { db in
                try await db.raw(
                    "SELECT type, subject_id AS \"subjectId\" FROM events WHERE type = 'device.shadow-document'"
                ).all(decoding: Logged.self)
            }
            #expect(logged.count == 1 && logged.first?.subjectId == device.id)
        }
    }

    @Test(arguments: TestEngine.available)
    func deviceLabelsMergeWithinTheirLimit(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let device = try #require(try await makeDevices(store, place, count: 1).first)
            #expect(device.labelMap.isEmpty)
            let after = try await store.changeDeviceLabels(
                device, set: [("vendor", "海康"), ("model", "DS-1"), ("vendor", "Hikvision")], remove: [], limit: 3)
            #expect(after == ["vendor": "Hikvision", "model": "DS-1"])
            #expect(
                try await store.changeDeviceLabels(device, set: [], remove: ["model", "absent"], limit: 3) == [
                    "vendor": "Hikvision"
                ])
            // Over the limit: refused whole.
            await #expect(throws: StoreError.self) {
                try await store.changeDeviceLabels(
                    device, set: [("a", "1"), ("b", "2"), ("c", "3")], remove: [], limit: 3)
            }
            let stored = try #require(
                try await store.device(productKey: device.productKey, deviceName: device.deviceName))
            #expect(stored.labelMap == ["vendor": "Hikvision"])
            // Each change that changed something is one event; the same labels again are none.
            try await store.changeDeviceLabels(device, set: [("vendor", "Hikvision")], remove: [], limit: 3)
            let events = try await store.read { db in
                try await db.count("SELECT COUNT(*) AS n FROM events WHERE type = 'device.labels'")
            }
            #expect(events == 2)
        }
    }

    @Test(arguments: TestEngine.available)
    func firmwareUpgradesGoFromOfferToTheirEnd(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let devices = try await makeDevices(store, place, count: 2)
            let folder = NSTemporaryDirectory() + "linli-firmware-\(UUID().uuidString)"
            let pk = devices[0].productKey
            let bytes = Array("firmware bytes".utf8)
            let v2 = try await store.addFirmware(
                productKey: pk, communityId: place.community.id, module: "default", version: "2.0", bytes: bytes,
                folder: folder, actor: tester)
            #expect(
                v2.size == bytes.count
                    && v2.sha256 == "dbf1bce8c5e41be6f0c17880b1ed3033714b384b2c2232b1c7b4f3fda822b6ce"
                    && v2.md5 == "d2e1d72f394504354de089465b9f7f4d")
            #expect(FileManager.default.contents(atPath: folder + "/" + v2.file) == Data(bytes))
            await #expect(throws: StoreError.self) {
                try await store.addFirmware(
                    productKey: pk, communityId: place.community.id, module: "default", version: "2.0", bytes: bytes,
                    folder: folder, actor: tester)
            }
            await #expect(throws: FirmwareFault.self) {
                try await store.addFirmware(
                    productKey: pk, communityId: place.community.id, module: "default", version: "2.1", bytes: [],
                    folder: folder, actor: tester)
            }

            let started = try await store.startUpgrades(to: v2, devices: devices, actor: tester)
            #expect(started.map(\.status) == [.waiting, .waiting])
            // A token works only once offered, and only the newest one.
            let upgrade = try #require(try await store.openUpgrades(of: devices[0]).first?.upgrade)
            let first = try await store.offer(upgrade)
            #expect(try await store.download(token: first) == v2)
            let second = try await store.offer(upgrade)
            #expect(try await store.download(token: first) == nil)
            #expect(try await store.download(token: second) == v2)

            // Progress, then the version: succeeded, the token void, an event on the log.
            #expect(
                try await store.recordUpgradeProgress(devices[0], module: "default", step: 40, detail: "writing")?
                    .status == .upgrading)
            #expect(
                try await store.finishUpgrades(devices[0], module: "default", version: "1.9").isEmpty,
                "another version ends nothing")
            #expect(try await store.finishUpgrades(devices[0], module: "default", version: "2.0").count == 1)
            #expect(try await store.download(token: second) == nil)
            #expect(try await store.openUpgrades(of: devices[0]).isEmpty)

            // A newer package supersedes an open upgrade of the same module; a failure closes one.
            let v3 = try await store.addFirmware(
                productKey: pk, communityId: place.community.id, module: "default", version: "3.0", bytes: bytes + [1],
                folder: folder, actor: tester)
            try await store.startUpgrades(to: v3, devices: [devices[1]], actor: tester)
            let byStatus = Dictionary(grouping: try await store.upgrades(of: v2), by: { $0.deviceName }).mapValues {
                $0[0].upgrade.status
            }
            #expect(byStatus == [devices[0].deviceName: .succeeded, devices[1].deviceName: .superseded])
            let open = try #require(try await store.openUpgrades(of: devices[1]).first)
            #expect(open.firmware == v3)
            _ = try await store.offer(open.upgrade)
            #expect(
                try await store.recordUpgradeProgress(
                    devices[1], module: "default", step: -2, detail: "download failed")?.status == .failed)
            #expect(
                try await store.recordUpgradeProgress(devices[1], module: "default", step: 50, detail: "") == nil,
                "nothing open any more")
            let events = try await store.read { db in
                try await db.count(
                    "SELECT COUNT(*) AS n FROM events WHERE type IN ('device.upgrade.succeeded', 'device.upgrade.failed')"
                )
            }
            #expect(events == 2)
        }
    }

    /// A reader that read the schema before a migration added a column must see the column at
    /// its next `SELECT *`: once, the first device to sign in after an upgrade was refused.
    @Test func readersSeeAColumnAMigrationAddedAtOnce() async throws {
        let store = try await TestEngine.sqlite.openUnmigrated()
        do {
            let before = Migrations.Ledger(
                table: Schema.linli.coreLedger.table, migrations: Schema.linli.core.filter { $0.version <= 18 })
            try await Migrations.migrate(store.database, ledger: before)
            try await Migrations.migrate(store.telemetry, ledger: Schema.linli.telemetryLedger)
            // Every reader compiles a `SELECT *` of devices under the old schema.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask { _ = try await store.read { db in try await db.raw("SELECT * FROM devices").all() } }
                }
                try await group.waitForAll()
            }
            #expect(
                try await Migrations.migrate(store.database, ledger: Schema.linli.coreLedger)
                    == Array(19...Schema.linli.latest))
            let place = try await Place.make(store)
            let device = try #require(try await makeDevices(store, place, count: 1).first)
            try await withThrowingTaskGroup(of: Device?.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await store.device(productKey: device.productKey, deviceName: device.deviceName)
                    }
                }
                for try await found in group { #expect(found?.labels == "{}") }
            }
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }

    @Test(arguments: TestEngine.available)
    func concurrentReportsCommitTogetherAndAllCount(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let devices = try await makeDevices(store, place)
            let writer = TelemetryWriter(store: store, logger: TestEngine.logger)
            let base: Millis = 1_700_000_000_000
            // 300 posts from two devices at once: each call returns only after its batch committed.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<300 {
                    let d = devices[i % 2]
                    let v = ReportedValue(
                        identifier: "Temp", json: "\(Double(i))", number: Double(i), time: base + Millis(i) * 1000)
                    group.addTask { try await writer.record(report(d, .properties([v]), at: base + Millis(i) * 1000)) }
                }
                try await group.waitForAll()
            }
            let diagnosis = try await store.diagnosis(devices.map(\.id))
            #expect(diagnosis[devices[0].id]?.messages == 150 && diagnosis[devices[1].id]?.messages == 150)
            #expect(diagnosis[devices[0].id]?.errors == 0)
            #expect(diagnosis[devices[1].id]?.lastSeenAt == base + 299_000)

            // The shadow holds the newest value whatever order the batches committed in.
            let shadow = try await store.shadow(devices[1])
            #expect(
                shadow.count == 1 && shadow[0].reported == "299.0" && shadow[0].reportedAt == base + 299_000
                    && shadow[0].reportedVersion == 150)

            let points = try await store.telemetry(
                devices[0], identifier: "Temp", from: base, to: base + 1_000_000, limit: 1000)
            #expect(points.count == 150 && points.first?.value == 0 && points.last?.value == 298)
            #expect(
                try await store.telemetry(devices[0], identifier: "Temp", from: base, to: base + 10_000, limit: 1000)
                    .count == 5)

            // Per minute: device 0 posted 0, 2, 4, … 58 in its first minute.
            let buckets = try await store.telemetryBuckets(
                devices[0], identifier: "Temp", from: base - 60_000, to: base + 1_000_000, bucketMillis: 60_000)
            let total = buckets.reduce(0) { $0 + $1.count }
            #expect(total == 150)
            let first = try #require(buckets.first)
            #expect(first.min == 0 && first.t <= base && first.t % 60_000 == 0)
            #expect(buckets.allSatisfy { ($0.min ?? 0) <= ($0.avg ?? 0) && ($0.avg ?? 0) <= ($0.max ?? 0) })
        }
    }

    @Test(arguments: TestEngine.available)
    func enqueuedReportsCommitInTheOrderTheyWereTaken(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let device = try await makeDevices(store, place, count: 1)[0]
            // Small batches, so that the 1,000 reports take several commits.
            let writer = TelemetryWriter(store: store, logger: TestEngine.logger, maxBatch: 64)
            let at: Millis = 1_700_000_000_000
            // All at the same millisecond: only the order they were taken in says which is newest.
            var receipts = (0..<1_000).map { i in
                writer.enqueue(
                    report(
                        device,
                        .properties([
                            ReportedValue(identifier: "Temp", json: "\(Double(i))", number: Double(i), time: at)
                        ]), at: at))
            }
            // Counters of batches committed while others wait add up in memory and are written with
            // a later commit: none may be lost on the way, the last error included.
            receipts.insert(writer.enqueue(report(device, .refused(reason: "Temp: not a number"), at: at + 1)), at: 500)
            for receipt in receipts.reversed() { try await receipt.wait() }
            try await receipts[0].wait()  // a receipt of a stored batch answers at once, again
            let shadow = try await store.shadow(device)
            #expect(shadow.count == 1 && shadow[0].reported == "999.0" && shadow[0].reportedVersion == 1_000)
            let diagnosis = try await store.diagnosis([device.id])[device.id]
            #expect(
                diagnosis?.messages == 1_001 && diagnosis?.errors == 1 && diagnosis?.lastError == "Temp: not a number"
                    && diagnosis?.lastSeenAt == at + 1)
            #expect(
                try await store.telemetry(device, identifier: "Temp", from: at, to: at + 1, limit: 2_000).count == 1_000
            )
        }
    }

    @Test(arguments: TestEngine.available)
    func refusedMessagesCountAsErrorsAndEventsGoOnTheLog(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let d = try await makeDevices(store, place, count: 1)[0]
            let writer = TelemetryWriter(store: store, logger: TestEngine.logger)
            try await writer.record(report(d, .refused(reason: "Temp: above the maximum 120")))
            try await writer.record(
                report(d, .event(identifier: "Overheat", type: "alert", valuesJSON: #"{"Temp":130}"#)))
            try await writer.record(
                report(
                    d, .properties([ReportedValue(identifier: "Mode", json: #""eco""#, number: nil, time: nowMillis())])
                ))
            let diagnosis = try #require(try await store.diagnosis([d.id])[d.id])
            #expect(
                diagnosis.messages == 3 && diagnosis.errors == 1 && diagnosis.lastError == "Temp: above the maximum 120"
            )
            let events = try await store.read { db in
                try await EventLog.read(db, after: 0, limit: 500, scope: .everything)
            }.filter { $0.type == "device.event" }
            #expect(events.count == 1 && events[0].subjectId == d.id && events[0].payload.contains("Overheat"))
            // Text values are kept as JSON text.
            let text = try await store.telemetry(d, identifier: "Mode", from: 0, to: nowMillis() + 1000, limit: 10)
            #expect(text.count == 1 && text[0].text == #""eco""# && text[0].value == nil)
        }
    }

    @Test(arguments: TestEngine.available)
    func desiredValuesWaitUntilDeliveredAndANewerVersionWaitsAgain(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let d = try await makeDevices(store, place, count: 1)[0]
            let first = try await store.setDesired(d, [("Temp", "25")], actor: tester)
            #expect(first == [DesiredValue(identifier: "Temp", value: "25", version: 1)])
            #expect(try await store.undeliveredDesired(d) == first)
            let second = try await store.setDesired(d, [("Temp", "26")], actor: tester)
            // The device accepted version 1 only: version 2 still waits.
            try await store.markDesiredDelivered(d, first)
            #expect(try await store.undeliveredDesired(d) == second)
            try await store.markDesiredDelivered(d, second)
            #expect(try await store.undeliveredDesired(d).isEmpty)
            let shadow = try await store.shadow(d)
            #expect(
                shadow.count == 1 && shadow[0].desired == "26" && shadow[0].desiredVersion == 2
                    && shadow[0].deliveredAt != nil && shadow[0].reported == nil)
        }
    }

    @Test(arguments: TestEngine.available)
    func pruningDeletesOnlyOldHistory(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let d = try await makeDevices(store, place, count: 1)[0]
            let writer = TelemetryWriter(store: store, logger: TestEngine.logger)
            for t: Millis in [1_000, 2_000, 3_000, 4_000] {
                try await writer.record(
                    report(d, .properties([ReportedValue(identifier: "Temp", json: "1", number: 1, time: t)])))
            }
            #expect(try await store.pruneTelemetry(before: 3_000) == 2)
            #expect(
                try await store.telemetry(d, identifier: "Temp", from: 0, to: 10_000, limit: 10).map(\.t) == [
                    3_000, 4_000,
                ])
        }
    }

    @Test(arguments: TestEngine.available)
    func historyReadsTheSameBeforeAndAfterRecentRowsAreMerged(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let d = try await makeDevices(store, place, count: 1)[0]
            // Merges after every 4 values: some history ends up in blocks, the rest waits in the log.
            let writer = TelemetryWriter(store: store, logger: TestEngine.logger, mergeRows: 4)
            for i in 0..<10 {
                let t = Millis(i) * 30_000
                try await writer.record(
                    report(
                        d, .properties([ReportedValue(identifier: "Temp", json: "\(i)", number: Double(i), time: t)])))
            }
            await writer.idle()
            let (merged, recent) = try await store.telemetry.read { db in
                (
                    try await db.count("SELECT COALESCE(SUM(count), 0) AS n FROM telemetry_blocks"),
                    try await db.count("SELECT COALESCE(SUM(count), 0) AS n FROM telemetry_log")
                )
            }
            #expect(merged == 8 && recent == 2)

            #expect(
                try await store.telemetry(d, identifier: "Temp", from: 0, to: 1_000_000, limit: 100).map(\.t)
                    == (0..<10).map { Millis($0) * 30_000 })
            // The newest three span both tables.
            #expect(
                try await store.telemetry(d, identifier: "Temp", from: 0, to: 1_000_000, limit: 3).compactMap(\.value)
                    == [7, 8, 9])
            let buckets = try await store.telemetryBuckets(
                d, identifier: "Temp", from: 0, to: 1_000_000, bucketMillis: 120_000)
            #expect(buckets.map(\.t) == [0, 120_000, 240_000])
            #expect(buckets.map(\.count) == [4, 4, 2])
            #expect(buckets.last?.min == 8 && buckets.last?.max == 9 && buckets.last?.avg == 8.5)
            #expect(try await store.telemetry(d, identifier: "Nothing", from: 0, to: 1_000_000, limit: 3).isEmpty)

            // Pruning reaches both tables; a new writer counts what the last one left unmerged.
            #expect(try await store.pruneTelemetry(before: 60_000) == 2)
            #expect(try await store.pruneTelemetry(before: 250_000) == 7)
            let next = TelemetryWriter(store: store, logger: TestEngine.logger, mergeRows: 2)
            try await next.record(
                report(d, .properties([ReportedValue(identifier: "Temp", json: "10", number: 10, time: 300_000)])))
            await next.idle()
            #expect(
                try await store.telemetry.read { db in try await db.count("SELECT COUNT(*) AS n FROM telemetry_log") }
                    == 0)
            #expect(
                try await store.telemetry(d, identifier: "Temp", from: 0, to: 1_000_000, limit: 100).map(\.t) == [
                    270_000, 300_000,
                ])
        }
    }

    @Test(arguments: TestEngine.available)
    func heldShadowIsReadAtOnceAndMadeWholeAfterACrash(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let d = try await makeDevices(store, place, count: 1)[0]
            // Holds everything, as under load; merges every 50 rows, each after writing what it held.
            let writer = TelemetryWriter(
                store: store, logger: TestEngine.logger, mergeRows: 50, holdFor: .seconds(3600),
                writesHeldWhenIdle: false)
            try await writer.start()
            for i in 0..<120 {
                let n = Double(i) / 4
                let values = [
                    ReportedValue(
                        identifier: "Temp", json: ReportedValue.text(of: n), number: n, time: Millis(i) * 1000,
                        plainNumber: true),
                    ReportedValue(
                        identifier: "Open", json: i % 2 == 0 ? "true" : "false", number: i % 2 == 0 ? 1 : 0,
                        time: Millis(i) * 1000),
                ]
                try await writer.record(report(d, .properties(values), at: Millis(i) * 1000))
            }
            try await writer.record(report(d, .refused(reason: "Temp: too hot"), at: 200_000))
            await writer.idle()
            struct Row: Decodable {
                var identifier: String
                var value: String
                var version: Int
            }
            let table = { (s: Store) in
                try await s.telemetry.read { db in
                    try await db.raw("SELECT identifier, value, version FROM device_shadow ORDER BY identifier").all(
                        decoding: Row.self)
                }
            }
            // The table is behind (the last merge wrote it), readers are not.
            let written = try await table(store)
            #expect(written.map(\.version) == [100, 100])
            let shadow = try await store.shadow(d)
            #expect(shadow.map(\.identifier) == ["Open", "Temp"])
            #expect(
                shadow.map(\.reported) == ["false", "29.75"] && shadow.map(\.reportedVersion) == [120, 120]
                    && shadow[0].reportedAt == 119_000)
            let diagnosis = try #require(try await store.diagnosis([d.id])[d.id])
            #expect(
                diagnosis.messages == 121 && diagnosis.errors == 1 && diagnosis.lastError == "Temp: too hot"
                    && diagnosis.lastSeenAt == 200_000)

            // A crash: the held values are gone with the process, history has them.
            let restarted = Store(database: store.database, cipher: store.cipher)
            #expect(try await restarted.shadow(d).map(\.reportedVersion) == [100, 100])
            let next = TelemetryWriter(store: restarted, logger: TestEngine.logger)
            try await next.start()
            let recovered = try await restarted.shadow(d)
            #expect(recovered.map(\.reported) == ["false", "29.75"] && recovered.map(\.reportedVersion) == [120, 120])
            #expect(try await table(restarted).map(\.value) == ["false", "29.75"])
            // History kept the text of the booleans beside their numbers, and only the number of the rest.
            let open = try await restarted.telemetry(d, identifier: "Open", from: 0, to: 1_000_000, limit: 2)
            #expect(open.map(\.text) == ["true", "false"] && open.map(\.value) == [1, 0])
            #expect(
                try await restarted.telemetry(d, identifier: "Temp", from: 0, to: 1_000_000, limit: 1).map(\.text) == [
                    nil
                ])
            // Starting again finds nothing more to add.
            try await TelemetryWriter(store: restarted, logger: TestEngine.logger).start()
            #expect(try await table(restarted).map(\.version) == [120, 120])
        }
    }

    @Test(arguments: TestEngine.available)
    func historyReadsAcrossManyBlocksTheLogAndRowsFromBeforeBlocks(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let d = try await makeDevices(store, place, count: 1)[0]
            // Every value its own block: 150 blocks, more than one page of them.
            let writer = TelemetryWriter(store: store, logger: TestEngine.logger, mergeRows: 1)
            for i in 0..<150 {
                let n = Double(i)
                try await writer.record(
                    report(
                        d,
                        .properties([
                            ReportedValue(
                                identifier: "Temp", json: ReportedValue.text(of: n), number: n,
                                time: 1_000_000 + Millis(i) * 1000, plainNumber: true)
                        ])))
            }
            await writer.idle()
            #expect(
                try await store.telemetry.read { db in try await db.count("SELECT COUNT(*) AS n FROM telemetry_blocks")
                } == 150)
            // Rows written before history went into blocks, in the same series: read beside them.
            try await store.telemetry.write { db in
                try await db.raw(
                    "INSERT INTO telemetry (series, ts, num, txt) SELECT id, 500000, 7.5, NULL FROM telemetry_series"
                ).run()
                try await db.raw(
                    "INSERT INTO telemetry (series, ts, num, txt) SELECT id, 999000, NULL, '\"off\"' FROM telemetry_series"
                ).run()
            }
            let newest = try await store.telemetry(d, identifier: "Temp", from: 0, to: 10_000_000, limit: 5)
            #expect(
                newest.map(\.t) == (145..<150).map { 1_000_000 + Millis($0) * 1000 }
                    && newest.map(\.value) == [145, 146, 147, 148, 149])
            let all = try await store.telemetry(d, identifier: "Temp", from: 0, to: 10_000_000, limit: 1_000)
            #expect(
                all.count == 152 && all.first?.t == 500_000 && all[1].text == "\"off\"" && all[1].value == nil
                    && all.last?.value == 149)
            let window = try await store.telemetry(d, identifier: "Temp", from: 1_010_000, to: 1_020_000, limit: 3)
            #expect(window.map(\.value) == [17, 18, 19])
            // Buckets of 100 s: the old rows, then 100 values, then 50.
            let buckets = try await store.telemetryBuckets(
                d, identifier: "Temp", from: 0, to: 10_000_000, bucketMillis: 100_000)
            #expect(buckets.map(\.t) == [500_000, 900_000, 1_000_000, 1_100_000])
            #expect(buckets.map(\.count) == [1, 1, 100, 50])
            #expect(
                buckets[1].avg == nil && buckets[2].min == 0 && buckets[2].max == 99 && buckets[2].avg == 49.5
                    && buckets[3].avg == 124.5)
            // Pruning takes old rows and whole blocks alike.
            #expect(try await store.pruneTelemetry(before: 1_100_000) == 102)
            #expect(try await store.telemetry(d, identifier: "Temp", from: 0, to: 10_000_000, limit: 1_000).count == 50)
        }
    }

    @Test(arguments: TestEngine.available)
    func historyFromBeforeBlocksSurvivesTheMigrationAndIsReadBesideNewHistory(engine: TestEngine) async throws {
        let store = try await engine.openUnmigrated()
        do { try await migratesAndReads(store) } catch {
            await store.database.close()
            throw error
        }
        await store.database.close()
    }

    func migratesAndReads(_ store: Store) async throws {
        try await Migrations.migrate(store.database, ledger: Schema.linli.coreLedger)
        // Telemetry as the previous release left it: rows merged into `telemetry`, others waiting.
        try await Migrations.migrate(
            store.telemetry,
            ledger: .init(table: "telemetry_migrations", migrations: Array(Schema.linli.telemetry.prefix(2))))
        let place = try await Place.make(store)
        let d = try await makeDevices(store, place, count: 1)[0]
        try await store.telemetry.write { db in
            try await db.raw("INSERT INTO telemetry_series (device_id, identifier) VALUES (\(bind: d.id), 'Temp')")
                .run()
            try await db.raw(
                "INSERT INTO telemetry (series, ts, num, txt) SELECT id, 1000, 1, NULL FROM telemetry_series"
            ).run()
            try await db.raw(
                "INSERT INTO telemetry_recent (series, ts, num, txt) SELECT id, 2000, 2, NULL FROM telemetry_series"
            ).run()
        }
        #expect(try await Migrations.migrate(store.telemetry, ledger: Schema.linli.telemetryLedger) == [3, 4, 5, 6])
        #expect(try await store.telemetry.read { db in try await db.count("SELECT COUNT(*) AS n FROM telemetry") } == 2)
        let writer = TelemetryWriter(store: store, logger: TestEngine.logger)
        try await writer.start()
        try await writer.record(
            report(
                d, .properties([ReportedValue(identifier: "Temp", json: "3", number: 3, time: 3000, plainNumber: true)])
            ))
        await writer.idle()
        #expect(
            try await store.telemetry(d, identifier: "Temp", from: 0, to: 10_000, limit: 10).compactMap(\.value) == [
                1, 2, 3,
            ])
        #expect(
            try await store.telemetryBuckets(d, identifier: "Temp", from: 0, to: 10_000, bucketMillis: 10_000).map(
                \.avg) == [2])
        #expect(try await store.pruneTelemetry(before: 2500) == 2)
        #expect(
            try await store.telemetry(d, identifier: "Temp", from: 0, to: 10_000, limit: 10).compactMap(\.value) == [3])
    }

    @Test func historyValuesRoundTripThroughTheirBinaryForm() throws {
        let values = [
            HistoryValue(series: 7, ts: -5, num: 22.5, txt: nil),
            HistoryValue(series: 1 << 40, ts: 1_700_000_000_123, num: 1, txt: "true"),
            HistoryValue(series: 3, ts: 0, num: nil, txt: "\"门已打开 · door open\""),
            HistoryValue(series: 3, ts: 1, num: nil, txt: nil),
        ]
        var bytes: [UInt8] = []
        for v in values { HistoryCoding.append(v, withSeries: true, to: &bytes) }
        var read: [HistoryValue] = []
        try HistoryCoding.decode(Data(bytes), withSeries: true) { read.append($0) }
        #expect(read == values)
        // Infinite numbers have no place in history: the value keeps its text only.
        bytes = []
        HistoryCoding.append(
            HistoryValue(series: 1, ts: 1, num: .infinity, txt: "1e999"), withSeries: false, to: &bytes)
        read = []
        try HistoryCoding.decode(Data(bytes), withSeries: false, series: 9) { read.append($0) }
        #expect(read == [HistoryValue(series: 9, ts: 1, num: nil, txt: "1e999")])
        // A cut-off blob is refused, not read past its end.
        #expect(throws: HistoryCoding.Malformed.self) {
            try HistoryCoding.decode(Data(bytes.dropLast(2)), withSeries: false) { _ in }
        }
    }

    @Test func numbersAreWrittenPlainly() {
        #expect(
            ReportedValue.text(of: 48) == "48" && ReportedValue.text(of: -0.0) == "0"
                && ReportedValue.text(of: 22.5) == "22.5")
        #expect(
            ReportedValue.text(of: 1e15) == "1000000000000000" && ReportedValue.text(of: 1e20) == "1e+20"
                && ReportedValue.text(of: 0.1) == "0.1")
        #expect(
            ReportedValue.text(of: 9_007_199_254_740_992) == "9007199254740992"
                && ReportedValue.text(of: 1.5e300) == "1.5e+300")
        // Infinite numbers have no JSON text of their own: history keeps their text.
        #expect(
            !ReportedValue(identifier: "x", json: "1e999", number: .infinity, time: 0, plainNumber: true).plainNumber)
    }

    @Test(arguments: TestEngine.available)
    func registryListsWithinReachAndFindsSilentDevices(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let devices = try await makeDevices(store, place, count: 3)
            let other = try await Place.make(store, name: "别的小区")
            let now = nowMillis()
            try await store.touchDevices([devices[0].id: now, devices[1].id: now - 180_000])
            var filter = DeviceFilter()
            filter.silentOnly = true
            // Device 1 was last seen three minutes ago (interval one minute, plus the minute the registry may trail); device 2 never.
            let silent = try await store.devices(
                communityId: place.community.id, filter: filter, page: PageRequest(), scope: .everything, now: now)
            #expect(Set(silent.items.map(\.deviceName)) == ["t-1", "t-2"])
            var scope = Scope()
            scope.communities = [other.community.id]
            #expect(
                try await store.devices(
                    communityId: place.community.id, filter: DeviceFilter(), page: PageRequest(), scope: scope
                ).total == 0)
            #expect(try await store.device(productKey: devices[0].productKey, deviceName: "t-0", scope: scope) == nil)
            var grid = Scope()
            grid.buildings = [place.building.id]
            #expect(
                try await store.devices(
                    communityId: place.community.id, filter: DeviceFilter(), page: PageRequest(), scope: grid
                ).total == 3)

            // Placement must be in the device's own community.
            let product = try #require(try await store.product(key: devices[0].productKey))
            var wrong = DevicePlacement()
            wrong.buildingId = other.building.id
            await #expect(
                throws: StoreError.conflict(field: "buildingId", reason: "is not a building of this community")
            ) {
                _ = try await store.registerDevice(product: product, deviceName: "x", placement: wrong, actor: tester)
            }
            // Disabled devices stay disabled when a connection ends.
            let disabled = try await store.setDeviceEnabled(devices[0], false, actor: tester)
            try await store.setDeviceStatus(disabled, .offline)
            #expect(try await store.device(productKey: devices[0].productKey, deviceName: "t-0")?.status == .disabled)
        }
    }

    @Test(arguments: TestEngine.available)
    func statusChangesMadeAtOnceAreAllStoredWithTheirEvents(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let devices = try await makeDevices(store, place, count: 30)
            let disabled = try await store.setDeviceEnabled(devices[0], false, actor: tester)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.setDeviceStatus(disabled, .online) }
                for device in devices.dropFirst() { group.addTask { try await store.setDeviceStatus(device, .online) } }
                try await group.waitForAll()
            }
            // Each returned after its change was committed: all are there, each with its event.
            let listed = try await store.devices(
                communityId: place.community.id, filter: DeviceFilter(), page: PageRequest(limit: 100),
                scope: .everything
            ).items
            #expect(listed.filter { $0.status == .online }.count == 29)
            #expect(listed.first { $0.id == disabled.id }?.status == .disabled, "a disabled device stays disabled")
            let events = try await store.read { db in
                try await EventLog.read(db, after: 0, limit: 1_000, scope: .everything)
            }
            #expect(Set(events.filter { $0.type == "device.online" }.map(\.subjectId)) == Set(devices.map(\.id)))
        }
    }

    @Test(arguments: TestEngine.available)
    func subDevicesAttachToOneGatewayAtATimeOnTheAuditTrail(engine: TestEngine) async throws {
        try await withStore(engine) { store in
            let place = try await Place.make(store)
            let gatewayProduct = Product(
                communityId: place.community.id, productKey: Product.newKey(), name: "Gateway", libraryKey: nil,
                tslJson: Self.tsl, nodeType: .gateway)
            try await store.createProduct(gatewayProduct, actor: tester)
            #expect(try await store.product(key: gatewayProduct.productKey)?.nodeType == .gateway)
            let gateways = try await store.registerDevices(
                product: gatewayProduct, [("gw-1", DevicePlacement()), ("gw-2", DevicePlacement())], actor: tester
            ).map(\.0)
            let subs = try await makeDevices(store, place, count: 2)
            #expect(
                try await store.product(key: subs[0].productKey)?.nodeType == .device,
                "a product is a plain device unless said otherwise")
            let gw = Principal(accountId: nil, name: "gateway test")

            try await store.attachSubDevices(subs, to: gateways[0], actor: gw)
            #expect(try await store.subDevices(of: gateways[0]).map(\.deviceName) == ["t-0", "t-1"])
            // Attached again elsewhere: it moves.
            let moved = try #require(try await store.device(id: subs[1].id))
            try await store.attachSubDevices([moved], to: gateways[1], actor: gw)
            #expect(try await store.subDevices(of: gateways[0]).map(\.deviceName) == ["t-0"])
            #expect(try await store.device(id: subs[1].id)?.gatewayId == gateways[1].id)
            // Detaching from a gateway it is not attached to changes nothing.
            #expect(try await store.detachSubDevices([moved], from: gateways[0], actor: gw).isEmpty)
            #expect(try await store.detachSubDevices(subs, from: gateways[0], actor: gw).map(\.deviceName) == ["t-0"])
            #expect(try await store.device(id: subs[0].id)?.gatewayId == nil)

            let trail = try await store.read { db in
                try await AuditLog.list(
                    db, scope: .everything, action: nil, subjectId: subs[1].id, page: PageRequest(limit: 10, offset: 0))
            }
            #expect(
                trail.items.map(\.action).filter { $0.hasPrefix("device.topology") } == [
                    "device.topology.added", "device.topology.added",
                ])
            #expect(trail.items.allSatisfy { $0.action != "device.topology.added" || $0.actorName == "gateway test" })
        }
    }
}
