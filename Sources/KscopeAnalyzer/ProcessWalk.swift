import KscopeCore
import KscopeLayout

extension Analyzer {
  /// A task from the task list: its page-table root (physical), nil for kernel threads or
  /// when its mm cannot be read.
  struct TaskRoot {
    var pid: Int32
    var command: String
    var root: UInt64?
  }

  /// The process walk: the task list from init_task and every process's page tables: marks frames mapped
  /// (and executable where a user mapping allows execution), turns executable page cache into
  /// user-code. Bounded against cyclic or endless lists.
  static func walkProcesses(
    space: KernelAddressSpace, layout: KernelLayout, _ frames: inout FrameTable
  ) -> [GuestProcess] {
    guard let initTask = layout.symbol("init_task")?.rawValue,
      let tasksOff = try? layout.offset(of: "task_struct", member: "tasks"),
      let mmOff = try? layout.offset(of: "task_struct", member: "mm"),
      let pidOff = try? layout.offset(of: "task_struct", member: "pid"),
      let commOff = try? layout.offset(of: "task_struct", member: "comm"),
      let pgdOff = try? layout.offset(of: "mm_struct", member: "pgd")
    else {
      frames.anomaly("layout lacks task_struct/mm_struct members")
      return []
    }
    var tasks: [TaskRoot] = []
    let start = space.running(initTask)
    var task = start
    var seenTasks = Set<UInt64>()
    var closed = false
    for _ in 0..<maxTasks {
      guard seenTasks.insert(task).inserted else { break }
      guard let pidRaw = space.u32(task &+ UInt64(pidOff)), let mm = space.u64(task &+ UInt64(mmOff)) else {
        frames.anomaly("task_struct not readable")
        break
      }
      let comm = space.bytes(task &+ UInt64(commOff), count: 16).map {
        String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
      } ?? "?"
      let root = mm == 0 ? nil : space.u64(mm &+ UInt64(pgdOff)).flatMap { space.physical($0) }
      tasks.append(TaskRoot(pid: Int32(bitPattern: pidRaw), command: comm, root: root))
      guard let next = space.u64(task &+ UInt64(tasksOff)) else {
        frames.anomaly("task list not readable")
        break
      }
      task = next &- UInt64(tasksOff)
      if task == start {
        closed = true
        break
      }
    }
    if !closed { frames.anomaly("task list did not return to init_task") }
    var found: [(String, Int)] = []
    let processes = markMappings(
      tasks: tasks, tables: space.tables, entries: &frames.entries, budget: max(frames.entries.count * 16, 1 << 24),
      anomaly: { found.append(($0, $1)) })
    for (what, n) in found { frames.anomaly(what, n) }
    return processes
  }

  static let maxTasks = 65_536
  /// What visiting one page table costs against the budget: its 512 entries are each looked at.
  static let tableCost = 512

  /// Marks what each task's page tables map. Each page-table root is walked once, however many
  /// tasks (threads, or a hostile guest's forged tasks) share it. The walk stops at `budget`:
  /// every table visited, every leaf (inside RAM or not) and every frame marked spends from it,
  /// so no guest can make it run longer than a real guest's tables would.
  static func markMappings(
    tasks: [TaskRoot], tables: PageTableWalker, entries: inout [UInt16], budget initial: Int,
    anomaly: (String, Int) -> Void
  ) -> [GuestProcess] {
    var out: [GuestProcess] = []
    var budget = initial
    var seenRoots = Set<UInt64>()
    let frameCount = UInt64(entries.count)
    let ramEnd = frameCount &* 4096
    for t in tasks {
      var mapped = 0
      if budget > 0, let root = t.root, seenRoots.insert(root).inserted {
        let stats = tables.forEachUserLeaf(root: root, maxLeaves: budget, maxTables: budget / tableCost + 1) { leaf in
          budget -= 1
          guard leaf.user, leaf.pa < ramEnd, budget > 0 else { return }
          var pa = leaf.pa
          let end = min(leaf.pa &+ leaf.size, ramEnd)
          while pa < end && budget > 0 {
            budget -= 1
            let f = pa / 4096
            pa += 4096
            var e = FrameEntry(rawValue: entries[Int(f)])
            var fl = e.flags
            fl.insert(.mapped)
            if leaf.executable { fl.insert(.executable) }
            if leaf.dirty && leaf.writable { fl.insert(.dirty) }
            let color: Color = e.color == .pageCache && leaf.executable ? .userCode : e.color
            e = FrameEntry(color, fl)
            entries[Int(f)] = e.rawValue
            mapped += 1
          }
        }
        budget -= stats.tablesVisited * tableCost
        if stats.anomalies > 0 { anomaly("page table anomalies", stats.anomalies) }
        if budget <= 0 { anomaly("process mappings beyond any real guest's (walk stopped)", 1) }
      }
      out.append(GuestProcess(pid: t.pid, command: t.command, mappedFrames: mapped))
    }
    return out
  }
}
