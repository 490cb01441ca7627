// Placeholder: the VM issue replaces it.
enum VMBench { static func run(_ args: [String]) throws { print("vm benchmark: not built yet") } }
