import Foundation
import NIOSSL

/// A listener that speaks MQTT inside TLS (by convention on port 8883), beside the plain TCP one.
public struct MQTTTLSListener: Sendable {
    public var host: String
    public var port: Int
    /// The server's certificate chain and key, ready for handshakes.
    public var context: NIOSSLContext

    public init(host: String = "127.0.0.1", port: Int = 8883, context: NIOSSLContext) {
        self.host = host
        self.port = port
        self.context = context
    }

    /// Why a certificate or key file cannot serve; the caller names the setting it came from.
    public enum FileProblem: Error, Sendable, Equatable {
        case certificateUnreadable
        case certificateNotPEM
        case keyUnreadable
        case keyNotPEM
        case keyDoesNotMatchCertificate
    }

    /// Loads a PEM certificate chain (leaf first) and its unencrypted PEM private key, and checks
    /// that they belong together, so that a wrong file stops start-up instead of every handshake.
    public init(host: String = "127.0.0.1", port: Int = 8883, certificateFile: String, keyFile: String)
        throws(FileProblem)
    {
        guard let certificateBytes = FileManager.default.contents(atPath: certificateFile) else {
            throw .certificateUnreadable
        }
        guard let chain = try? NIOSSLCertificate.fromPEMBytes(Array(certificateBytes)), !chain.isEmpty else {
            throw .certificateNotPEM
        }
        guard let keyBytes = FileManager.default.contents(atPath: keyFile) else { throw .keyUnreadable }
        guard let key = try? NIOSSLPrivateKey(bytes: Array(keyBytes), format: .pem) else { throw .keyNotPEM }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // Devices and SDKs in use speak TLS 1.2 at least; older versions only widen the attack surface.
        tls.minimumTLSVersion = .tlsv12
        // The context loads the chain before the key, and BoringSSL refuses a key that does not
        // belong to the leaf certificate: with both files parsed, that is the failure left.
        guard let context = try? NIOSSLContext(configuration: tls) else { throw .keyDoesNotMatchCertificate }
        self.init(host: host, port: port, context: context)
    }
}
