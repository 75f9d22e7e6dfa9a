/// permessage-deflate modes named by memory, like uWebSockets' (compressor 3 KB … 256 KB,
/// decompressor 512 B … 32 KB), except that each name is the whole of what zlib 1.2.13 allocates
/// for one connection, its fixed state included (uWebSockets names only the window and hash
/// table): deflate (1 << (windowBits + 2)) + (1 << (memLevel + 9)) + 5,952 bytes of state, inflate
/// (1 << windowBits) + 7,160 bytes of state, counted with a counting allocator.
extension CompressionSettings {
    /// Our per-connection compressor, named by the KiB zlib allocates for it on the first
    /// compressed message we send (never at the handshake).
    ///
    /// Each size is a window and a memLevel (`memLevel = windowBits − 7`); the window is stated
    /// to the client as `server_max_window_bits` when below 15. A client that asks for a smaller
    /// window gets it, and the compressor shrinks to the size of that window.
    public enum Compressor: Int, Sendable, Hashable, CaseIterable {
        /// Window 9 (512 B), memLevel 2: 10,048 bytes.
        case kb10 = 9
        /// Window 10 (1 KiB), memLevel 3: 14,144 bytes.
        case kb14 = 10
        /// Window 11 (2 KiB), memLevel 4: 22,336 bytes.
        case kb22 = 11
        /// Window 12 (4 KiB), memLevel 5: 38,720 bytes (Python `websockets`' own compressor).
        case kb38 = 12
        /// Window 13 (8 KiB), memLevel 6: 71,488 bytes.
        case kb70 = 13
        /// Window 14 (16 KiB), memLevel 7: 137,024 bytes.
        case kb134 = 14
        /// Window 15 (32 KiB), memLevel 8: 268,096 bytes (zlib's default).
        case kb262 = 15

        /// The LZ77 window, 2^windowBits bytes.
        public var windowBits: Int { rawValue }
        /// zlib's memLevel.
        public var memLevel: Int { rawValue - 7 }
        /// What zlib allocates: window, hash chains, hash table, block buffer and state.
        public var bytes: Int { (1 << (windowBits + 2)) + (1 << (memLevel + 9)) + 5_952 }
    }

    /// Our per-connection decompressor, named by the KiB zlib allocates for it on the first
    /// compressed message received (never at the handshake).
    ///
    /// The size is the window the client must compress with: we ask for it with
    /// `client_max_window_bits=N`, which RFC 7692 §7.1.2.2 lets a server do only when the client
    /// offered `client_max_window_bits` (browsers and Python `websockets` do). A client that did
    /// not may use a 32 KiB window, so its connection gets ``kb39`` whatever was chosen: a smaller
    /// inflater would fail on its messages. (Answering `client_no_context_takeover` would not help:
    /// one message may still refer 32 KiB back. Only ``CompressionSettings/shared``, which lends
    /// an inflater per message, holds nothing between messages.)
    public enum Decompressor: Int, Sendable, Hashable, CaseIterable {
        /// Window 10 (1 KiB): 8,184 bytes.
        case kb8 = 10
        /// Window 11 (2 KiB): 9,208 bytes.
        case kb9 = 11
        /// Window 12 (4 KiB): 11,256 bytes.
        case kb11 = 12
        /// Window 13 (8 KiB): 15,352 bytes.
        case kb15 = 13
        /// Window 14 (16 KiB): 23,544 bytes.
        case kb23 = 14
        /// Window 15 (32 KiB): 39,928 bytes; what a client that did not offer
        /// `client_max_window_bits` gets in any dedicated mode.
        case kb39 = 15

        /// The window we ask the client to compress with, 2^windowBits bytes.
        public var windowBits: Int { rawValue }
        /// What zlib allocates: window and state.
        public var bytes: Int { (1 << windowBits) + 7_160 }
    }

    /// A compressor and a decompressor for each connection, sized separately, with context
    /// takeover both ways (the best ratio for the memory).
    ///
    /// - Parameters:
    ///   - compressor: the memory of our deflater (the window and memLevel follow).
    ///   - decompressor: the memory of our inflater (the window we ask the client for).
    ///   - level: zlib level 0–9. Default 1.
    ///   - threshold: messages shorter than this go out uncompressed. Default 256 bytes.
    public static func dedicated(compressor: Compressor = .kb38, decompressor: Decompressor = .kb11,
                                 level: Int = 1, threshold: Int = 256) -> CompressionSettings {
        CompressionSettings(memory: .dedicated, windowBits: compressor.windowBits,
                            peerWindowBits: decompressor.windowBits, level: level, threshold: threshold)
    }

    /// One deflater per event-loop thread and a per-thread pool of inflaters lent for one message
    /// at a time: a connection holds no zlib state between messages. We state
    /// `server_no_context_takeover` and `client_no_context_takeover` (RFC 7692 §7.1.1.2 lets a
    /// server do so unasked); a client that keeps its context anyway fails with 1007 alone.
    public static let shared = CompressionSettings(memory: .shared)
}
