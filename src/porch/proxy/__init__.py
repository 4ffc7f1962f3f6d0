"""Edge features about proxies: trusted forwarding headers (later: PROXY protocol)."""
