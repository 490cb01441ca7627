// KscopeOS
