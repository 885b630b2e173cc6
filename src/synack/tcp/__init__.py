"""The TCP protocol machine: one connection (TCB) per object, pure and clock-free."""
