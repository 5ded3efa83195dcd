"""The long-running service: supervisor, intake (watcher, routing), worker pool and worker processes, aftercare, systemd."""
