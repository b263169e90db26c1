/// A community (小区) as the kernels know it: the tenant every row and every role binding belongs to.
/// What is inside it (buildings, households, people) is the community module's.
public struct Community: Codable, Sendable, Equatable {
    public var id: ID
    public var name: String
    /// Administrative codes (GB/T 2260 for city and district, the street office's own code).
    public var cityCode: String
    public var districtCode: String
    public var streetCode: String
    public var address: String
    public var createdAt: Millis

    public init(
        id: ID = newID(), name: String, cityCode: String, districtCode: String, streetCode: String, address: String,
        createdAt: Millis = nowMillis()
    ) {
        self.id = id
        self.name = name
        self.cityCode = cityCode
        self.districtCode = districtCode
        self.streetCode = streetCode
        self.address = address
        self.createdAt = createdAt
    }
}
