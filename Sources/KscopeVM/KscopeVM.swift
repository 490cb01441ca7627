// KscopeVM: placeholder until its issue lands.
