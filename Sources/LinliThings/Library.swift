/// Linli's built-in thing models for the devices a community has: pick one instead of writing TSL.
/// Identifiers follow Alibaba IoT's standard feature names where one exists, so devices built for
/// that ecosystem fit without change.
public enum ProductLibrary {
    public struct Entry: Sendable {
        public var key: String
        public var name: String
        public var category: String
        public var model: ThingModel
        /// A gateway brings other devices in as its sub-devices (Alink topology and sub-device login).
        public var isGateway = false
    }

    typealias T = ThingModel.DataType
    static func int(_ min: Double, _ max: Double, unit: String? = nil, _ unitName: String? = nil, step: Double = 1) -> T
    {
        .int(.init(min: min, max: max, step: step, unit: unit, unitName: unitName))
    }
    static func float(_ min: Double, _ max: Double, unit: String? = nil, _ unitName: String? = nil, step: Double = 0.1)
        -> T
    {
        .float(.init(min: min, max: max, step: step, unit: unit, unitName: unitName))
    }
    static func double(
        _ min: Double, _ max: Double, unit: String? = nil, _ unitName: String? = nil, step: Double = 0.01
    ) -> T {
        .double(.init(min: min, max: max, step: step, unit: unit, unitName: unitName))
    }
    static func bool(_ off: String, _ on: String) -> T { .bool(names: ["0": off, "1": on]) }
    static func choice(_ names: [Int: String]) -> T { .enumeration(names: names) }
    static let battery = prop("BatteryPercentage", "电池电量", .r, int(0, 100, unit: "%", "百分比"))
    static func field(_ id: String, _ name: String, _ type: T) -> ThingModel.Field {
        .init(identifier: id, name: name, dataType: type)
    }
    static func prop(_ id: String, _ name: String, _ mode: ThingModel.AccessMode, _ type: T, required: Bool = false)
        -> ThingModel.Property
    {
        .init(identifier: id, name: name, accessMode: mode, required: required, dataType: type)
    }
    static func event(_ id: String, _ name: String, _ type: ThingModel.EventType, _ output: [ThingModel.Field] = [])
        -> ThingModel.Event
    {
        .init(
            identifier: id, name: name, type: type, required: false, method: "thing.event.\(id).post",
            outputData: output)
    }
    static func service(
        _ id: String, _ name: String, _ call: ThingModel.CallType = .async, input: [ThingModel.Field] = [],
        output: [ThingModel.Field] = []
    ) -> ThingModel.Service {
        .init(
            identifier: id, name: name, callType: call, required: false, method: "thing.service.\(id)",
            inputData: input, outputData: output)
    }

    /// Adds the built-in `post` event and `set`/`get` services every TSL model carries.
    static func model(
        _ properties: [ThingModel.Property], events: [ThingModel.Event] = [], services: [ThingModel.Service] = []
    ) -> ThingModel {
        let fields = properties.map { field($0.identifier, $0.name, $0.dataType) }
        let writable = properties.filter { $0.accessMode != .r }.map { field($0.identifier, $0.name, $0.dataType) }
        let builtInEvents = [
            ThingModel.Event(
                identifier: "post", name: "post", type: .info, required: true, method: "thing.event.property.post",
                outputData: fields)
        ]
        let builtInServices = [
            ThingModel.Service(
                identifier: "set", name: "set", callType: .async, required: true, method: "thing.service.property.set",
                inputData: writable, outputData: []),
            ThingModel.Service(
                identifier: "get", name: "get", callType: .async, required: true, method: "thing.service.property.get",
                inputData: [], outputData: fields),
        ]
        return ThingModel(
            productKey: nil, properties: properties, events: builtInEvents + events,
            services: builtInServices + services)
    }

    public static let all: [Entry] = [
        Entry(
            key: "door_contact", name: "门磁 Door contact sensor", category: "security",
            model: model(
                [
                    prop("ContactState", "门磁状态", .r, bool("关闭", "打开"), required: true), battery,
                ], events: [event("TamperAlarm", "防拆报警", .alert)])),
        Entry(
            key: "smoke_detector", name: "烟雾报警器 Smoke detector", category: "fire",
            model: model(
                [
                    prop("SmokeSensorState", "烟雾检测状态", .r, bool("正常", "检测到烟雾"), required: true),
                    prop("SmokeConcentration", "烟雾浓度", .r, float(0, 10_000, unit: "ppm", "百万分率")), battery,
                ],
                events: [
                    event(
                        "SmokeAlarm", "烟雾报警", .alert,
                        [field("SmokeConcentration", "烟雾浓度", float(0, 10_000, unit: "ppm", "百万分率"))]),
                    event(
                        "Fault", "故障", .error, [field("FaultCode", "故障代码", choice([1: "传感器故障", 2: "低电量", 3: "拆除"]))]),
                ],
                services: [service("Mute", "消音")])),
        Entry(
            key: "water_leak", name: "水浸传感器 Water-leak sensor", category: "safety",
            model: model(
                [
                    prop("WaterLeakState", "水浸状态", .r, bool("正常", "漏水"), required: true), battery,
                ], events: [event("WaterLeakAlarm", "漏水报警", .alert)])),
        Entry(
            key: "sos_button", name: "紧急按钮 SOS button", category: "care",
            model: model([battery], events: [event("SOS", "紧急呼叫", .alert)])),
        Entry(
            key: "access_controller", name: "门禁控制器 Access controller", category: "access",
            model: model(
                [
                    prop("DoorState", "门状态", .r, bool("关闭", "打开"), required: true),
                    prop("LockState", "锁状态", .r, bool("上锁", "解锁")),
                ],
                events: [
                    event(
                        "DoorOpened", "开门记录", .info,
                        [
                            field("Method", "开门方式", choice([1: "卡", 2: "密码", 3: "二维码", 4: "人脸", 5: "远程", 6: "按钮"])),
                            field("CredentialId", "凭证编号", .text(maxLength: 64)),
                        ]),
                    event("ForcedOpen", "非法开门", .alert), event("DoorHeldOpen", "门长时间未关", .alert),
                ],
                services: [
                    service("Unlock", "远程开门", .sync, input: [field("Seconds", "开门时长", int(1, 60, unit: "s", "秒"))])
                ])),
        Entry(
            key: "barrier_gate", name: "道闸 Barrier gate with plate recognition", category: "parking",
            model: model(
                [
                    prop("GateState", "道闸状态", .r, choice([0: "关闭", 1: "打开", 2: "运动中", 3: "故障"]), required: true)
                ],
                events: [
                    event(
                        "PlateRecognized", "车牌识别", .info,
                        [
                            field("Plate", "车牌号", .text(maxLength: 16)), field("Confidence", "置信度", float(0, 1)),
                            field("Direction", "方向", choice([0: "入场", 1: "出场"])),
                        ])
                ],
                services: [service("Open", "开闸", .sync), service("Close", "关闸", .sync)])),
        Entry(
            key: "video_ai_camera", name: "视频AI摄像机 Video-AI camera", category: "security",
            model: model(
                [
                    prop("Online", "在线", .r, bool("离线", "在线"))
                ],
                events: [
                    event(
                        "EBikeInLift", "电瓶车进电梯", .alert,
                        [field("Confidence", "置信度", float(0, 1)), field("SnapshotUrl", "抓拍图", .text(maxLength: 1024))]),
                    event(
                        "ThrowFromHeight", "高空抛物", .alert,
                        [field("Floor", "楼层估计", int(-5, 300)), field("SnapshotUrl", "抓拍图", .text(maxLength: 1024))]),
                    event(
                        "FireLaneBlocked", "消防通道占用", .alert, [field("Seconds", "持续时长", int(0, 86_400, unit: "s", "秒"))]),
                    event("StrangerDetected", "陌生人", .info, [field("SnapshotUrl", "抓拍图", .text(maxLength: 1024))]),
                ])),
        Entry(
            key: "smart_bin", name: "智能垃圾桶 Smart bin", category: "sanitation",
            model: model(
                [
                    prop("FillLevel", "满溢度", .r, int(0, 100, unit: "%", "百分比"), required: true),
                    prop("BinType", "垃圾类别", .r, choice([1: "可回收物", 2: "有害垃圾", 3: "厨余垃圾", 4: "其他垃圾"])), battery,
                ], events: [event("Full", "满溢", .alert)])),
        Entry(
            key: "water_meter", name: "水表 Water meter", category: "energy",
            model: model(
                [
                    prop("TotalFlow", "累计用水量", .r, double(0, 99_999_999, unit: "m³", "立方米"), required: true),
                    prop("ValveState", "阀门状态", .rw, bool("关", "开")), battery,
                ], events: [event("Leakage", "疑似漏水", .alert)])),
        Entry(
            key: "electricity_meter", name: "电表 Electricity meter", category: "energy",
            model: model([
                prop("TotalActiveEnergy", "总有功电能", .r, double(0, 99_999_999, unit: "kW·h", "千瓦时"), required: true),
                prop("Voltage", "电压", .r, float(0, 500, unit: "V", "伏特")),
                prop("Current", "电流", .r, float(0, 200, unit: "A", "安培")),
                prop("Switch", "通断", .rw, bool("断开", "闭合")),
            ])),
        Entry(
            key: "gas_meter", name: "燃气表 Gas meter", category: "energy",
            model: model(
                [
                    prop("TotalFlow", "累计用气量", .r, double(0, 99_999_999, unit: "m³", "立方米"), required: true),
                    prop("ValveState", "阀门状态", .rw, bool("关", "开")), battery,
                ], events: [event("GasLeak", "燃气泄漏", .alert)])),
        Entry(
            key: "lift_monitor", name: "电梯监测 Lift monitor", category: "safety",
            model: model(
                [
                    prop("Floor", "当前楼层", .r, int(-5, 300), required: true),
                    prop("RunState", "运行状态", .r, choice([0: "停止", 1: "上行", 2: "下行", 3: "检修", 4: "故障"])),
                    prop("DoorState", "轿门状态", .r, bool("关闭", "打开")), prop("PersonInside", "轿厢有人", .r, bool("无人", "有人")),
                ],
                events: [
                    event("Trapped", "困人", .alert, [field("Floor", "楼层", int(-5, 300))]),
                    event("Fault", "故障", .error, [field("FaultCode", "故障代码", int(0, 9999))]),
                ])),
        Entry(
            key: "hydrant_pressure", name: "消火栓水压 Fire-hydrant pressure", category: "fire",
            model: model(
                [
                    prop("WaterPressure", "水压", .r, float(0, 2.5, unit: "MPa", "兆帕"), required: true), battery,
                ],
                events: [
                    event(
                        "LowPressure", "水压过低", .alert, [field("WaterPressure", "水压", float(0, 2.5, unit: "MPa", "兆帕"))])
                ])),
        Entry(
            key: "environment_sensor", name: "环境传感器 Environment sensor", category: "environment",
            model: model([
                prop("CurrentTemperature", "温度", .r, float(-40, 120, unit: "°C", "摄氏度"), required: true),
                prop("CurrentHumidity", "湿度", .r, float(0, 100, unit: "%", "百分比")),
                prop("Noise", "噪声", .r, float(0, 150, unit: "dB", "分贝")),
                prop("PM25", "PM2.5", .r, int(0, 1000, unit: "μg/m³", "微克每立方米")),
                prop("ReportInterval", "上报间隔", .rw, int(10, 86_400, unit: "s", "秒")),
            ])),
        Entry(
            key: "street_light", name: "路灯 Street light", category: "lighting",
            model: model(
                [
                    prop("LightSwitch", "开关", .rw, bool("关", "开"), required: true),
                    prop("Brightness", "亮度", .rw, int(0, 100, unit: "%", "百分比")),
                    prop("Power", "功率", .r, float(0, 1000, unit: "W", "瓦")),
                ], events: [event("LampFault", "灯具故障", .error)],
                services: [
                    service(
                        "SetSchedule", "设置时间表",
                        input: [
                            field("OnTime", "开灯时间", .text(maxLength: 5)), field("OffTime", "关灯时间", .text(maxLength: 5)),
                        ])
                ])),
        // The route for legacy systems that speak other protocols (RS-485/Modbus meters, Zigbee or
        // LoRa sensors): a gateway signs its sub-devices in over its own connection.
        Entry(
            key: "protocol_gateway", name: "协议网关 Protocol gateway", category: "gateway",
            model: model(
                [
                    prop("CPUUsage", "CPU使用率", .r, float(0, 100, unit: "%", "百分比")),
                    prop("MemoryUsage", "内存使用率", .r, float(0, 100, unit: "%", "百分比")),
                    prop("SubDeviceCount", "子设备数", .r, int(0, 10_000)),
                ],
                events: [event("SubDeviceLost", "子设备失联", .alert, [field("DeviceName", "子设备名称", .text(maxLength: 64))])]),
            isGateway: true),
    ]

    public static func entry(_ key: String) -> Entry? { all.first { $0.key == key } }
}
