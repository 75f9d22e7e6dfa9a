import Synchronization

/// One subscriber's queue of messages to send: many producers (whoever publishes), one consumer
/// (the subscriber's writer task), bounded. `take` hands over everything queued at once, so a busy
/// topic costs one wake-up per batch rather than per message.
final class HubOutbox: Sendable {
    enum PushResult: Equatable {
        case queued
        /// The outbox was full and the oldest queued message made room (``SlowConsumerPolicy/dropOldest``).
        case queuedDroppingOldest
        /// `capacity` messages are waiting: the message was not queued.
        case full
        /// The outbox was finished: the message was not queued.
        case finished
    }

    private struct State {
        var queue: [PreparedMessage] = []
        var head = 0
        var finished = false
        var waiter: CheckedContinuation<[PreparedMessage]?, Never>?
        var count: Int { queue.count - head }
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Queues a message; when full, drops the oldest queued one first if `dropOldest`, otherwise
    /// refuses. Never waits.
    func push(_ message: PreparedMessage, dropOldest: Bool) -> PushResult {
        let (result, waiter) = state.withLock { s -> (PushResult, CheckedContinuation<[PreparedMessage]?, Never>?) in
            if s.finished { return (.finished, nil) }
            if let w = s.waiter {
                // The consumer is waiting, so the queue is empty: hand the message straight over.
                s.waiter = nil
                return (.queued, w)
            }
            var result = PushResult.queued
            if s.count >= capacity {
                guard dropOldest else { return (.full, nil) }
                s.head += 1
                result = .queuedDroppingOldest
            }
            if s.head > 64 && s.head * 2 > s.queue.count {
                s.queue.removeFirst(s.head)
                s.head = 0
            }
            s.queue.append(message)
            return (result, nil)
        }
        waiter?.resume(returning: [message])
        return result
    }

    /// Messages waiting.
    var count: Int { state.withLock { $0.count } }

    /// No more messages will be queued; what is queued can still be taken.
    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<[PreparedMessage]?, Never>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Everything queued (at least one message), waiting if there is nothing yet; nil once the
    /// outbox is finished and empty, or the task is cancelled. One consumer at a time.
    func take() async -> [PreparedMessage]? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<[PreparedMessage]?, Never>) in
                let now: [PreparedMessage]?? = state.withLock { s in
                    if s.count > 0 {
                        defer {
                            s.queue = []
                            s.head = 0
                        }
                        return .some(Array(s.queue[s.head...]))
                    }
                    if s.finished || Task.isCancelled { return .some(nil) }
                    s.waiter = c
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            finish()
        }
    }
}
