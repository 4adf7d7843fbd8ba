"""Device descriptions, resource estimates and synthesis checks (planned; see README: Limits)."""
