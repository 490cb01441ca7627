// kscope-agent: placeholder until the guest agent lands.
print("kscope-agent: not built yet")
