// The channel and Martini-like layers build on the NIO layer; a `Sockets` user needs its
// vocabulary (close codes, errors, messages, the handshake types and configuration pieces) without
// a second import, as with SwiftNIO's and Hummingbird's umbrella modules.
@_exported public import SocketsCore
