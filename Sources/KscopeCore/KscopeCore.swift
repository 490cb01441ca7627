// KscopeCore
