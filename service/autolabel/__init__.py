"""autolabel: streaming auto-labeling with certified precision."""

__version__ = "0.1.0"
