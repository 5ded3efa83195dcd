"""The service configuration: parsed from YAML and validated once, at the edge, into typed objects.

engine.py derives the `engine` section and a style set's `params` from the one engine schema
(daemon/engine/params.py); sections.py holds the other sections, settings.py the whole Config, loading.py
reads a file and filesystem.py checks the folders and images it names. reference.py writes
docs/configuration.md from all of their field descriptions.
"""

from daemon.config.engine import EngineSettings, StyleOverrides, effective_engine
from daemon.config.filesystem import check_filesystem, folder_needs
from daemon.config.loading import load_config, parse_config, state_folder
from daemon.config.sections import (GallerySettings, GlobRule, LoggingSettings, MetricsSettings, OutputSettings,
                                    Retries, Routing, Schedule, StyleImageRef, StyleSet, WatchSettings)
from daemon.config.settings import Config
from daemon.engine.param_types import parse_byte_size

__all__ = ["Config", "EngineSettings", "GallerySettings", "GlobRule", "LoggingSettings", "MetricsSettings",
           "OutputSettings", "Retries", "Routing", "Schedule", "StyleImageRef", "StyleOverrides", "StyleSet",
           "WatchSettings", "check_filesystem", "effective_engine", "folder_needs", "load_config", "parse_byte_size",
           "parse_config", "state_folder"]
