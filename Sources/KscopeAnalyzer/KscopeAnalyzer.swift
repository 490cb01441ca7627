// KscopeAnalyzer: coloring guest memory from outside (in progress).
