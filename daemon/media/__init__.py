"""Files in and out: decoding and encoding images, atomic writes, content hashes, the sidecar, one job's files."""
