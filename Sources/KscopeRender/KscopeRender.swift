// KscopeRender: placeholder until map render lands.
