// Placeholder: the layout issue replaces it.
enum LayoutBench { static func run(_ args: [String]) throws { print("layout benchmark: not built yet") } }
