import Foundation
import HTTPTypes
import Hummingbird
import LinliCore
import LinliDeviceRegistry
import LinliHTTP
import LinliStorage
import LinliThings
import Logging
import Synchronization

extension API {
    func registerCommands(_ api: RouterGroup<AppContext>) {
        api.post("devices/:pk/:dn/properties", use: setDeviceProperties)
        api.post("devices/:pk/:dn/services/:service", use: callDeviceService)
    }

    // MARK: device commands

    struct CommandInput: Decodable {
        var params: JSONValue
        var timeoutSeconds: Int?
    }

    @Sendable func setDeviceProperties(_ request: Request, context: AppContext) async throws -> Response {
        try await command(request, context) { params in .setProperties(params) }
    }

    @Sendable func callDeviceService(_ request: Request, context: AppContext) async throws -> Response {
        let service = try context.parameters.require("service")
        return try await command(request, context) { params in .callService(service, params) }
    }

    /// Sends a command to a connected device and answers with the device's own reply
    /// (`{"id", "code", "data", "message"}`), or a problem: 409 offline, 422 invalid values, 504 no reply.
    func command(_ request: Request, _ context: AppContext, _ make: (JSONValue) -> DeviceGateway.Command) async throws
        -> Response
    {
        var request = request
        let scope = try context.scope(.operateDevices)
        let pk = try context.parameters.require("pk")
        let dn = try context.parameters.require("dn")
        guard let device = try await store.device(productKey: pk, deviceName: dn),
            scope.coversCommunity(device.communityId)
        else {
            throw Problem.notFound("device")
        }
        guard let gateway = services.devices else {
            throw Problem(.serviceUnavailable, type: "mqtt-off", title: "The MQTT broker is not running on this node")
        }
        let input = try await request.decodeJSON(CommandInput.self, context: context)
        let timeout = input.timeoutSeconds ?? 10
        if !(1...60).contains(timeout) {
            throw Problem.invalid([FieldIssue("timeoutSeconds", "must be between 1 and 60")])
        }
        let command = make(input.params)
        let reply: JSONValue
        do {
            reply = try await gateway.send(command, productKey: pk, deviceName: dn, timeout: .seconds(timeout))
        } catch {
            switch error {
            case .offline: throw Problem.conflict("device", "is not connected")
            case let .unknownService(name): throw Problem.notFound("service \(name)")
            case let .invalid(faults): throw Problem.invalid(faults.map { FieldIssue("params.\($0.path)", $0.reason) })
            case .noThingModel: throw Problem.conflict("device", "its product has no thing model")
            case let .timedOut(waited):
                // A sync service waits at most 8 s, whatever was asked: the detail says how long it was.
                throw Problem(
                    .gatewayTimeout, type: "device-timeout", title: "The device did not reply in time",
                    detail: "No reply within \(waited.components.seconds) s.")
            }
        }
        try await store.write { db in
            let what: String
            switch command {
            case .setProperties: what = "thing.service.property.set"
            case let .callService(name, _): what = "thing.service.\(name)"
            }
            try await Change.record(
                db, actor: context.principal, communityId: device.communityId, type: "device.command",
                subjectType: "device", subjectId: device.id,
                after: ["method": what, "reply": String(decoding: reply.serialized(), as: UTF8.self)])
        }
        return try JSON.response(reply)
    }

}
