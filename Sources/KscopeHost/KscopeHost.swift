// KscopeHost
