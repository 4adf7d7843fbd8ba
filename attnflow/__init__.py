"""attnflow: transformer models to verified streaming-dataflow hardware."""
__version__ = "0.1.0"
