import LinliHTTP

// A page of households is the console's and the API's most read listing: written straight to JSON
// (see `JSONWritable`), in the order and with the keys `Encodable` gives.
extension HouseholdListing: JSONWritable {
    package func write(json: inout JSONWriter) {
        json.object { json in
            json.member("id", id)
            json.member("communityId", communityId)
            json.member("buildingId", buildingId)
            json.member("buildingName", buildingName)
            json.member("unitId", unitId)
            json.member("unitName", unitName)
            json.member("room", room)
            json.member("floor", floor)
            json.member("area", area)
            json.member("occupancy", occupancy)
            json.member("residents", residents)
        }
    }
}

// People and their residencies, written straight to JSON like households (see `JSONWritable`).
extension PersonView: JSONWritable {
    package func write(json: inout JSONWriter) {
        json.object { json in
            json.member("id", id)
            json.member("communityId", communityId)
            json.member("name", name)
            json.member("phone", phone)
            json.member("identityNumber", identityNumber)
            json.key("careTags")
            json.array(careTags) { json, tag in json.string(tag.rawValue) }
            json.member("residencies", residencies)
        }
    }
}

extension ResidencyListing: JSONWritable {
    package func write(json: inout JSONWriter) {
        json.object { json in
            json.member("id", id)
            json.member("personId", personId)
            json.member("personName", personName)
            json.member("householdId", householdId)
            json.member("householdLabel", householdLabel)
            json.member("role", role)
            json.member("leaseStart", leaseStart)
            json.member("leaseEnd", leaseEnd)
            json.member("movedIn", movedIn)
            json.member("movedOut", movedOut)
            json.member("current", current)
        }
    }
}
