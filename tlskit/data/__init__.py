"""Files shipped inside the package (read with importlib.resources): the demo dataset of `tlskit serve`."""
