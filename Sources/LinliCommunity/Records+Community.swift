import LinliCore
import LinliStorage

extension Community: Record { public static let table = "communities" }
extension Building: Record { public static let table = "buildings" }
extension BuildingUnit: Record { public static let table = "units" }
extension Household: Record { public static let table = "households" }
extension Person: Record { public static let table = "people" }
extension Residency: Record { public static let table = "residencies" }
extension Vehicle: Record { public static let table = "vehicles" }
extension Organisation: Record { public static let table = "organisations" }
extension StaffMember: Record { public static let table = "staff" }
extension Grid: Record { public static let table = "grids" }
