"""What people look at: the gallery, contact sheets, `status`, Prometheus metrics and progress display."""
