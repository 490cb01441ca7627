import Foundation

/// A minimal HTTP/1.0 GET over loopback TCP. busybox httpd closes the connection after each
/// response, so a response is everything until end of stream. Sizes and time are bounded: the
/// guest is not trusted to behave.
public struct HTTPResponse: Sendable {
  public var status: Int
  public var headers: [String: String]
  public var body: Data
}

public enum HTTPClient {
  public static let maxResponse = 64 << 20

  public static func get(port: UInt16, path: String, timeout: Double = 30) throws -> HTTPResponse {
    let deadline = Date(timeIntervalSinceNow: timeout)
    let s = try SocketConnection.loopback(port: port, timeout: timeout)
    try s.write(Data("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
    var raw = Data()
    while true {
      let chunk = try s.read(max: 1 << 16, deadline: deadline)
      if chunk.isEmpty { break }
      raw.append(chunk)
      if raw.count > maxResponse {
        throw VMError.guest("HTTP response to \(path) over \(maxResponse) bytes")
      }
    }
    return try parse(raw, path: path)
  }

  /// Splits a raw response into status, headers and body.
  public static func parse(_ raw: Data, path: String = "") throws -> HTTPResponse {
    guard let sep = raw.range(of: Data("\r\n\r\n".utf8)) else {
      throw VMError.guest("malformed HTTP response to \(path) (\(raw.count) bytes, no header end)")
    }
    let head = String(decoding: raw[raw.startIndex..<sep.lowerBound], as: UTF8.self)
    var lines = head.components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst().split(separator: " ")
    guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let status = Int(statusLine[1])
    else { throw VMError.guest("malformed HTTP status line for \(path)") }
    var headers: [String: String] = [:]
    for line in lines {
      guard let colon = line.firstIndex(of: ":") else { continue }
      headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
        .trimmingCharacters(in: .whitespaces)
    }
    return HTTPResponse(status: status, headers: headers, body: Data(raw[sep.upperBound...]))
  }
}
