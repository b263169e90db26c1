import Testing
@testable import LinliServer
@Test func placeholderServer() {}
