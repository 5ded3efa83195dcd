"""Test support shipped with the package, not product code: the stand-in engine behind STYLE_DAEMON_FAKE_ENGINE."""
