"""Side-by-side benchmarks of streamrun_async against raw aiohttp, pydantic and naive polling.

Run ``python -m benchmarks`` (full run; rewrites ``benchmarks/RESULTS.md``) or
``python -m benchmarks --quick`` (a smoke run for CI that writes nothing). Every figure is a
ratio measured in one run: the SDK and its baseline alternate, medians are compared.
"""
