"""porch configuration: every setting declared once, loaded from file, env and CLI."""

from porch.config.loaders import LoadResult, dump_config_toml, load_config
from porch.config.settings import Config

__all__ = ["Config", "LoadResult", "dump_config_toml", "load_config"]
