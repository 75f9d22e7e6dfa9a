import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Waits for SIGINT or SIGTERM.
enum SignalWaiter {
    static func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let once = Once(c)
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { once.fire() }
                source.resume()
                Holder.keep(source)
            }
        }
    }

    private final class Once: @unchecked Sendable {
        private var c: CheckedContinuation<Void, Never>?
        private let lock = DispatchQueue(label: "sockets.signal")
        init(_ c: CheckedContinuation<Void, Never>) { self.c = c }
        func fire() {
            lock.sync {
                c?.resume()
                c = nil
            }
        }
    }

    private enum Holder {
        nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
        static func keep(_ s: any DispatchSourceSignal) { sources.append(s) }
    }
}
