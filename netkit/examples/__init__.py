"""Small apps used by the docs, the tests and the benchmarks."""
