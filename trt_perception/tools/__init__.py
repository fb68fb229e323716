"""Command-line tools of the ``trt-perception`` command."""
