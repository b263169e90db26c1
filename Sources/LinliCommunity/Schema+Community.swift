import LinliCore
import LinliStorage
import SQLKit

extension Schema {
    /// Places, households, people, residencies, vehicles, organisations, staff and grids.
    public static let community = Schema(
        core: [
            Migration(version: 1, name: "community data core") { _ in
                [
                    """
                    CREATE TABLE communities (
                        id TEXT PRIMARY KEY, name TEXT NOT NULL, city_code TEXT NOT NULL, district_code TEXT NOT NULL,
                        street_code TEXT NOT NULL, address TEXT NOT NULL, created_at BIGINT NOT NULL)
                    """,
                    """
                    CREATE TABLE buildings (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                        floors BIGINT NOT NULL, UNIQUE (community_id, name))
                    """,
                    """
                    CREATE TABLE units (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id),
                        building_id TEXT NOT NULL REFERENCES buildings(id), name TEXT NOT NULL, UNIQUE (building_id, name))
                    """,
                    """
                    CREATE TABLE households (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id),
                        building_id TEXT NOT NULL REFERENCES buildings(id), unit_id TEXT NOT NULL REFERENCES units(id),
                        room TEXT NOT NULL, floor BIGINT NOT NULL, area DOUBLE PRECISION, occupancy TEXT NOT NULL,
                        UNIQUE (unit_id, room))
                    """,
                    "CREATE INDEX households_community ON households (community_id, building_id, unit_id, room)",
                    """
                    CREATE TABLE people (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                        phone TEXT NOT NULL, identity_cipher TEXT, identity_index TEXT, identity_masked TEXT,
                        care_tags TEXT NOT NULL, created_at BIGINT NOT NULL)
                    """,
                    "CREATE INDEX people_community_name ON people (community_id, name)",
                    "CREATE INDEX people_identity ON people (community_id, identity_index)",
                    """
                    CREATE TABLE residencies (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id),
                        person_id TEXT NOT NULL REFERENCES people(id), household_id TEXT NOT NULL REFERENCES households(id),
                        role TEXT NOT NULL, lease_start TEXT, lease_end TEXT, moved_in TEXT NOT NULL, moved_out TEXT)
                    """,
                    "CREATE INDEX residencies_household ON residencies (household_id)",
                    "CREATE INDEX residencies_person ON residencies (person_id)",
                    """
                    CREATE TABLE vehicles (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), plate TEXT NOT NULL,
                        household_id TEXT REFERENCES households(id), person_id TEXT REFERENCES people(id),
                        description TEXT NOT NULL, UNIQUE (community_id, plate))
                    """,
                    """
                    CREATE TABLE organisations (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                        kind TEXT NOT NULL, phone TEXT NOT NULL)
                    """,
                    """
                    CREATE TABLE staff (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id),
                        organisation_id TEXT NOT NULL REFERENCES organisations(id), name TEXT NOT NULL, title TEXT NOT NULL,
                        phone TEXT NOT NULL, account_id TEXT)
                    """,
                    """
                    CREATE TABLE grids (
                        id TEXT PRIMARY KEY, community_id TEXT NOT NULL REFERENCES communities(id), name TEXT NOT NULL,
                        worker_account_id TEXT)
                    """,
                    """
                    CREATE TABLE grid_buildings (
                        grid_id TEXT NOT NULL REFERENCES grids(id), building_id TEXT NOT NULL REFERENCES buildings(id),
                        community_id TEXT NOT NULL, PRIMARY KEY (grid_id, building_id))
                    """,
                ]
            },
            // Residents' phones kept as identity numbers are: encrypted, with a keyed hash to find
            // one by; `phone` keeps only the masked form. Rows an older version wrote are sealed
            // by `Store.sealPhones()` right after the migration (it needs the secret).
            Migration(version: 21, name: "people's phones encrypted") { _ in
                [
                    "ALTER TABLE people ADD COLUMN phone_cipher TEXT",
                    "ALTER TABLE people ADD COLUMN phone_index TEXT",
                    "CREATE INDEX people_phone ON people (community_id, phone_index)",
                ]
            },
        ]
    )
}
