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
    /// loop to the handler's thread and its reply back. With the server pinned to one CPU, a
    /// 32-byte echo measured 0.95× SwiftNIO's echo against 1.08× on `.eventLoop`, and a p99
    /// latency of 1.1 ms against 4.3 ms (Benchmarks/RESULTS-echo.md, round 6); on more cores the
    /// handlers run beside the event loops, and one that computes for long holds up no loop.
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
///
/// Jobs are queued here and run in batches by one event-loop task: a reader resumed by each of
/// the messages one read delivers costs an array append, not a closure allocated per job and a
/// task of the loop's own (the loop's `execute` takes a closure, and the job differs each time).
@available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *)
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `loop` and `runBatch` are immutable after init, `queue` is locked, and an
    // EventLoop may be scheduled on from any thread.
    let loop: any EventLoop

    private struct Queue {
        var jobs: [UnownedJob] = []
        /// The batch's run is scheduled on the loop and has not taken the jobs yet.
        var scheduled = false
    }
    private let queue = NIOLockedValueBox(Queue())
    /// The event loop's side: made once, so scheduling a batch allocates nothing.
    private var runBatch: @Sendable () -> Void = {}
    /// The run's array, kept (empty) between batches: its capacity is reused, swapped with the
    /// queue's.
    private var spare: [UnownedJob] = []

    private init(loop: any EventLoop) {
        self.loop = loop
        self.runBatch = { [unowned self] in self.run() }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let schedule = queue.withLockedValue { q -> Bool in
            q.jobs.append(job)
            if q.scheduled { return false }
            q.scheduled = true
            return true
        }
        if schedule { loop.execute(runBatch) }
    }

    /// On the loop: runs the jobs queued so far. Jobs they queue run in the next batch (the loop
    /// handles its I/O in between).
    private func run() {
        var batch: [UnownedJob] = []
        swap(&batch, &spare) // moved, not copied: the queue appends to it without copying it
        queue.withLockedValue { q in
            q.scheduled = false
            swap(&batch, &q.jobs)
        }
        let executor = asUnownedTaskExecutor()
        for job in batch { job.runSynchronously(on: executor) }
        batch.removeAll(keepingCapacity: true)
        spare = batch
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
