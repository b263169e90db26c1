// The broker speaks in the wire kernel's packets; whoever uses the broker uses them too.
@_exported import LinliMQTTWire
