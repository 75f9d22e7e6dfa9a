import NIOConcurrencyHelpers
import NIOCore

/// Where the task that runs a channel-API route's handler runs (``Options/handlerExecutor``).
public enum HandlerExecutor: Sendable, Hashable {
    /// The connection's event loop: the handler's nonisolated code, the waits of
    /// `receiver` and `send` run on the thread that reads and writes the connection, so a
    /// message reaches the handler and its reply reaches the socket with no thread hand-off,
    /// as in the callback API. A handler that blocks, or computes for long, delays the other
    /// connections of its event loop: move such work elsewhere (`.global`, or a task of its
    /// own). Child tasks of the handler run there too; `Task {}` does not. Needs the Swift 6
    /// concurrency runtime's task executors (macOS 15, iOS 18, tvOS 18, watchOS 11, Linux):
    /// elsewhere the handler runs on the global executor.
    case eventLoop
    /// Swift's global concurrent executor (the default): each message crosses from the event
    /// loop to the handler's thread and its reply back. A 32-byte echo with the server pinned to
    /// one CPU measured the same messages per CPU-second either way (Benchmarks/RESULTS-echo.md,
    /// round 4); on more cores the handlers run beside the event loops.
    case global

    /// Starts `operation`, the handler's work for a connection on `loop`, in a task of its own.
    func startTask(on loop: any EventLoop, _ operation: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        if self == .eventLoop, #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *) {
            return Task(executorPreference: EventLoopTaskExecutor.of(loop), operation: operation)
        }
        return Task(operation: operation)
    }
}

/// A `TaskExecutor` over a SwiftNIO event loop, for tasks that prefer it (``HandlerExecutor``).
/// One per event loop, kept for the process's life (it holds its loop: a loop's identity is never
/// reused while a cache entry names it).
@available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *)
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `loop` is immutable, and an EventLoop may be scheduled on from any thread.
    let loop: any EventLoop

    private init(loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    private static let executors = NIOLockedValueBox<[ObjectIdentifier: EventLoopTaskExecutor]>([:])

    /// The executor of `loop`, made on first use.
    static func of(_ loop: any EventLoop) -> EventLoopTaskExecutor {
        executors.withLockedValue { all in
            if let e = all[ObjectIdentifier(loop)] { return e }
            let e = EventLoopTaskExecutor(loop: loop)
            all[ObjectIdentifier(loop)] = e
            return e
        }
    }
}
