"""`make bench`: the performance harness (issue 11). Run by hand, never in CI or `make test`.

`python -m bench` (or `make bench`; `BENCH_QUICK=1` for a ~3-minute version) creates and migrates
its own database (`halobestie_bench`), uses its own Valkey prefixes (`bench:`), starts real server
processes, prints a table, writes `bench/results/*.json` and `bench/results/chat_latency.png`.
The numbers and what they mean: docs/PERFORMANCE.md.
"""
