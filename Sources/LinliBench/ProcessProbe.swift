import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A process's memory and CPU time, read from /proc (Linux only; elsewhere nil).
public struct ProcessSample: Sendable, Equatable {
    /// Resident memory now, and the peak since the process started, in KiB.
    public var rssKiB: Int
    public var peakRssKiB: Int
    /// User plus system CPU time, seconds.
    public var cpuSeconds: Double
    public var openFiles: Int?
    public var openFilesLimit: Int?
}

public enum ProcessProbe {
    public static func sample(pid: Int32) -> ProcessSample? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let memory = parseStatus(status), let ticks = parseStatCPUTicks(stat)
        else { return nil }
        let openFiles = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
        let limits = (try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)).flatMap(parseOpenFilesLimit)
        return ProcessSample(
            rssKiB: memory.rss, peakRssKiB: memory.peak, cpuSeconds: Double(ticks) / Double(clockTicksPerSecond),
            openFiles: openFiles, openFilesLimit: limits)
    }

    /// `VmRSS:   123 kB` and `VmHWM:   456 kB` from /proc/PID/status.
    public static func parseStatus(_ text: String) -> (rss: Int, peak: Int)? {
        var rss: Int?
        var peak: Int?
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2 else { continue }
            if fields[0] == "VmRSS:" { rss = Int(fields[1]) }
            if fields[0] == "VmHWM:" { peak = Int(fields[1]) }
        }
        guard let rss, let peak else { return nil }
        return (rss, peak)
    }

    /// utime + stime (fields 14 and 15) from /proc/PID/stat. The command name (field 2) may hold
    /// spaces and parentheses, so counting starts after its last ')'.
    public static func parseStatCPUTicks(_ text: String) -> Int? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After ')' comes field 3 (state): utime is field 14, the 12th from here.
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// The soft limit on "Max open files" from /proc/PID/limits.
    public static func parseOpenFilesLimit(_ text: String) -> Int? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }) else {
            return nil
        }
        return line.dropFirst("Max open files".count).split(separator: " ").first.flatMap { Int($0) }
    }

    static var clockTicksPerSecond: Int {
        #if os(Linux)
            return max(1, sysconf(Int32(_SC_CLK_TCK)))
        #else
            return 100
        #endif
    }

    /// This process's own CPU time, seconds.
    public static func ownCPUSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
            getrusage(RUSAGE_SELF, &usage)
        #endif
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Raises this process's soft limit on open files to its hard limit (no privilege needed) and
    /// returns the limit now in force. Each connection is one file descriptor.
    public static func raiseOpenFileLimit() -> Int {
        #if os(Linux)
            let files = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
            let files = RLIMIT_NOFILE
        #endif
        var limit = rlimit()
        guard getrlimit(files, &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(files, &limit)
            _ = getrlimit(files, &limit)
        }
        return limit.rlim_cur > rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }
}
