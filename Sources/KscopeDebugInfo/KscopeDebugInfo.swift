// KscopeDebugInfo: placeholder until its issue lands.
