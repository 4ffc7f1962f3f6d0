"""The master process: listening sockets, worker processes, signals, heartbeats, reload."""
