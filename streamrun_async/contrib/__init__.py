"""Integrations with other libraries, each in its own module with its own extra.

- :mod:`streamrun_async.contrib.otel`: OpenTelemetry traces (``pip install
  streamrun-async[otel]``).
"""
