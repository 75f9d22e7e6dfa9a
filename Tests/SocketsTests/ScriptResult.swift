import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a helper script (the Python clients, the chat scenarios) did: one process run to the end
/// with a deadline, both pipes read so neither can fill up. Shared by the interop and chat tests.
struct ScriptResult: Sendable {
    var status: Int32 = -1
    var stdout = Data()
    var stderr = Data()
    var timedOut = false
    var launchError: String?

    private final class Collected: @unchecked Sendable {
        var data = Data()
    }

    private final class Flag: Sendable {
        let raised = Atomic<Bool>(false)
    }

    /// Runs a process to the end with a deadline, reading both pipes so neither can fill up.
    static func run(_ arguments: [String], timeout: Double) -> ScriptResult {
        var result = ScriptResult()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            result.launchError = "\(error)"
            return result
        }
        let timedOut = Flag()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem {
            timedOut.raised.store(true, ordering: .relaxed)
            kill(pid, SIGTERM)  // the script stops its server (and the server dies with it)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        let errData = Collected()
        let errDone = DispatchSemaphore(value: 0)
        let errHandle = err.fileHandleForReading
        Thread.detachNewThread {
            errData.data = errHandle.readDataToEndOfFile()
            errDone.signal()
        }
        result.stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        watchdog.cancel()
        errDone.wait()
        result.stderr = errData.data
        result.status = process.terminationStatus
        result.timedOut = timedOut.raised.load(ordering: .relaxed)
        return result
    }
}
