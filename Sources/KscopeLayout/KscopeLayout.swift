// KscopeLayout: placeholder until its issue lands.
