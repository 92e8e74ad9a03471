"""campaign-flow: push-notification campaigns drawn as flowcharts in YAML."""

__version__ = "0.1.0"
