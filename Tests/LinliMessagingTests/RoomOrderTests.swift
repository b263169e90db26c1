import Testing

@testable import LinliMessaging

@Suite("Rooms in natural order")
struct RoomOrderTests {
    @Test func numbersInNamesCompareAsNumbers() {
        let rooms = ["1001", "101", "99", "201", "1002", "102"]
        #expect(rooms.sorted(by: RoomOrder.precedes) == ["99", "101", "102", "201", "1001", "1002"])
        let buildings = ["10号楼", "3号楼", "东楼", "1号楼", "3号楼A"]
        #expect(buildings.sorted(by: RoomOrder.precedes) == ["1号楼", "3号楼", "3号楼A", "10号楼", "东楼"])
        // Equal values written differently keep one order; huge digit runs do not crash.
        #expect(RoomOrder.precedes("1", "01") && !RoomOrder.precedes("01", "1"))
        #expect(RoomOrder.precedes("99999999999999999999", "a"))
        #expect(!RoomOrder.precedes("101", "101"))
    }

    @Test func placesCompareByBuildingThenUnitThenRoom() {
        let places = [
            ("10号楼", "1单元", "101"), ("2号楼", "2单元", "101"), ("2号楼", "10单元", "101"),
            ("2号楼", "2单元", "1001"), ("2号楼", "2单元", "201"),
        ]
        let sorted = places.sorted(by: RoomOrder.precedes)
        #expect(
            sorted.map { "\($0.0) \($0.1) \($0.2)" } == [
                "2号楼 2单元 101", "2号楼 2单元 201", "2号楼 2单元 1001", "2号楼 10单元 101", "10号楼 1单元 101",
            ])
    }
}
