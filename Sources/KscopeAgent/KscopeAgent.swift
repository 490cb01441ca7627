// KscopeAgent: placeholder until the guest agent lands.
