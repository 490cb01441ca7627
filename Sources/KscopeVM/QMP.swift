import Foundation

/// One message from QEMU's QMP server, classified. QMP sends one JSON object per line: a
/// greeting, command replies (`return` or `error`, echoing our `id`), and asynchronous events.
public enum QMPMessage: Equatable {
  case greeting(version: String)
  case success(id: Int?, result: QMPValue)
  case failure(id: Int?, errorClass: String, description: String)
  case event(name: String)

  /// Parses one line. Guest-controlled in spirit (QEMU relays guest-triggered events), so
  /// anything unexpected is an error, never a crash.
  public static func parse(_ line: Data) throws -> QMPMessage {
    guard let object = try? JSONSerialization.jsonObject(with: line),
      let dict = object as? [String: Any]
    else {
      throw VMError.qmp("not a JSON object: \(String(decoding: line.prefix(200), as: UTF8.self))")
    }
    let id = dict["id"] as? Int
    if let qmp = dict["QMP"] as? [String: Any] {
      let v = (qmp["version"] as? [String: Any])?["qemu"] as? [String: Any]
      let version = [v?["major"], v?["minor"], v?["micro"]].compactMap {
        ($0 as? Int).map(String.init)
      }
      .joined(separator: ".")
      return .greeting(version: version)
    }
    if let ret = dict["return"] { return .success(id: id, result: QMPValue(ret)) }
    if let err = dict["error"] as? [String: Any] {
      return .failure(
        id: id, errorClass: err["class"] as? String ?? "?",
        description: err["desc"] as? String ?? "")
    }
    if let event = dict["event"] as? String { return .event(name: event) }
    throw VMError.qmp("unrecognised message: \(String(decoding: line.prefix(200), as: UTF8.self))")
  }

  /// The JSON line for a command, with `id` so the reply can be matched.
  public static func command(_ name: String, arguments: [String: Any]? = nil, id: Int) throws
    -> Data
  {
    var object: [String: Any] = ["execute": name, "id": id]
    if let arguments { object["arguments"] = arguments }
    var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    data.append(0x0a)
    return data
  }
}

/// A JSON value from QMP, kept as Foundation's parse tree with typed accessors.
public struct QMPValue: Equatable, @unchecked Sendable {
  public let raw: Any
  init(_ raw: Any) { self.raw = raw }
  public subscript(key: String) -> QMPValue? {
    (raw as? [String: Any])?[key].map(QMPValue.init)
  }
  public var string: String? { raw as? String }
  public var int: Int? { raw as? Int }
  public var bool: Bool? { raw as? Bool }
  public var array: [QMPValue]? { (raw as? [Any])?.map(QMPValue.init) }
  public static func == (a: QMPValue, b: QMPValue) -> Bool {
    (a.raw as? NSObject)?.isEqual(b.raw as? NSObject) ?? false
  }
}

/// Splits a byte stream into lines, refusing lines longer than `maxLine` (a misbehaving peer
/// must not make us buffer without bound).
public struct LineFramer {
  public let maxLine: Int
  private var buffer = Data()
  public init(maxLine: Int = 1 << 20) { self.maxLine = maxLine }

  public mutating func append(_ data: Data) throws {
    buffer.append(data)
    if buffer.count > maxLine && buffer.firstIndex(of: 0x0a) == nil {
      throw VMError.qmp("line longer than \(maxLine) bytes")
    }
  }

  /// The next complete line without its newline (and without a trailing CR), if any.
  public mutating func nextLine() -> Data? {
    guard let nl = buffer.firstIndex(of: 0x0a) else { return nil }
    var line = buffer[buffer.startIndex..<nl]
    if line.last == 0x0d { line = line.dropLast() }
    buffer = Data(buffer[(nl + 1)...])
    return Data(line)
  }
}

/// A QMP client over QEMU's unix socket: reads the greeting, negotiates capabilities, then runs
/// commands one at a time, matching replies by id and skipping events. Every read has a deadline.
public final class QMPClient {
  private let socket: SocketConnection
  private var framer = LineFramer()
  private var nextID = 1
  public private(set) var qemuVersion = ""
  public private(set) var events: [String] = []

  public init(path: String, timeout: Double = 10) throws {
    socket = try SocketConnection.unix(path: path)
    let deadline = Date(timeIntervalSinceNow: timeout)
    guard case .greeting(let version) = try readMessage(deadline: deadline) else {
      throw VMError.qmp("no greeting on \(path)")
    }
    qemuVersion = version
    _ = try execute("qmp_capabilities", timeout: timeout)
  }

  public func close() { socket.close() }

  /// Runs a command and returns its `return` value; a QMP error becomes `VMError.qmp`.
  @discardableResult
  public func execute(
    _ name: String, arguments: [String: Any]? = nil, timeout: Double = 10,
    passing descriptor: Int32? = nil
  ) throws
    -> QMPValue
  {
    let id = nextID
    nextID += 1
    let line = try QMPMessage.command(name, arguments: arguments, id: id)
    if let descriptor {
      try socket.write(line, passing: descriptor)
    } else {
      try socket.write(line)
    }
    let deadline = Date(timeIntervalSinceNow: timeout)
    while true {
      switch try readMessage(deadline: deadline) {
      case .success(let rid, let result) where rid == id: return result
      case .failure(let rid, let cls, let desc) where rid == id:
        throw VMError.qmp("\(name) failed: \(cls): \(desc)")
      case .event(let e): events.append(e)
      default: continue  // a stale reply or a second greeting: not ours
      }
    }
  }

  /// Hands QEMU an open file under `name` (QMP getfd): a migration URI "fd:NAME" then reads or
  /// writes it. No path and no shell is involved.
  public func passFile(_ descriptor: Int32, name: String) throws {
    try execute("getfd", arguments: ["fdname": name], passing: descriptor)
  }

  private func readMessage(deadline: Date) throws -> QMPMessage {
    while true {
      if let line = framer.nextLine() {
        if line.isEmpty { continue }
        return try QMPMessage.parse(line)
      }
      let chunk: Data
      do { chunk = try socket.read(max: 65536, deadline: deadline) } catch VMError.timeout {
        throw VMError.timeout("waiting for a QMP reply")
      }
      if chunk.isEmpty { throw VMError.qmp("QEMU closed the QMP socket") }
      try framer.append(chunk)
    }
  }
}
