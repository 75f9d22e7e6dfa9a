#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOSSL

/// TLS for an ``App`` (`https://` and `wss://`): a certificate chain and its private key, read
/// from PEM files once, when the value is made, so a bad setup is an error at startup that names
/// the file, never a failure per connection.
///
/// ```swift
/// let tls = try ServerTLS(certificateChainFile: "cert.pem", privateKeyFile: "key.pem")
/// try await app.run(host: "0.0.0.0", port: 443, tls: tls)
/// ```
/// A client that fails the TLS handshake (it does not trust the certificate, speaks plain HTTP)
/// loses only its own connection.
public struct ServerTLS: Sendable {
    let context: NIOSSLContext

    /// Loads the certificate chain and the private key and checks that they belong together.
    ///
    /// - Parameters:
    ///   - certificateChainFile: PEM file: the server's certificate first, then intermediates.
    ///   - privateKeyFile: PEM file with the certificate's private key (unencrypted).
    /// - Throws: ``ServerTLSError`` naming the file and the problem.
    public init(certificateChainFile: String, privateKeyFile: String) throws(ServerTLSError) {
        for (what, path) in [("certificate chain", certificateChainFile), ("private key", privateKeyFile)] {
            guard FileManager.default.fileExists(atPath: path) else { throw .fileMissing(what: what, path: path) }
            guard FileManager.default.isReadableFile(atPath: path) else { throw .fileUnreadable(what: what, path: path) }
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateChainFile)
        } catch {
            throw .invalidCertificate(path: certificateChainFile, reason: "\(error)")
        }
        guard !chain.isEmpty else { throw .invalidCertificate(path: certificateChainFile, reason: "no certificate in the file") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: privateKeyFile, format: .pem)
        } catch {
            throw .invalidPrivateKey(path: privateKeyFile, reason: "\(error)")
        }
        let config = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                               privateKey: .privateKey(key))
        do {
            context = try NIOSSLContext(configuration: config)
        } catch {
            throw .keyMismatch(certificatePath: certificateChainFile, keyPath: privateKeyFile, reason: "\(error)")
        }
    }
}

/// Why a ``ServerTLS`` could not be set up.
public enum ServerTLSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file does not exist.
    case fileMissing(what: String, path: String)
    /// The file exists but cannot be read.
    case fileUnreadable(what: String, path: String)
    /// The certificate file holds no valid PEM certificate.
    case invalidCertificate(path: String, reason: String)
    /// The key file holds no valid unencrypted PEM private key.
    case invalidPrivateKey(path: String, reason: String)
    /// The private key does not belong to the certificate (or TLS refused the pair).
    case keyMismatch(certificatePath: String, keyPath: String, reason: String)

    /// A one-line description naming the file and the problem.
    public var description: String {
        switch self {
        case .fileMissing(let what, let path): "TLS \(what) file \(path) does not exist"
        case .fileUnreadable(let what, let path): "TLS \(what) file \(path) cannot be read"
        case .invalidCertificate(let path, let reason): "TLS certificate file \(path) holds no valid PEM certificate: \(reason)"
        case .invalidPrivateKey(let path, let reason): "TLS private key file \(path) holds no valid PEM private key: \(reason)"
        case .keyMismatch(let cert, let key, let reason): "TLS private key \(key) does not match certificate \(cert): \(reason)"
        }
    }
}
