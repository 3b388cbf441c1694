"""tswatch: time-series forecasting and anomaly detection with recurrent networks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tswatch")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
