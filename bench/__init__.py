"""The project's benchmarks: ``python -m bench [--quick] [scenario ...]`` (``make bench``,
``make bench-quick``).

One module per scenario, each with ``NAME``, ``TITLE`` and ``run(quick) -> Report``:

- ``discovery``: Compute API calls per poll cycle, against the emulator, vs the Gloo tutorial's way;
- ``translation``: full vs incremental translation, and the serialization floor;
- ``fanout``: an endpoint change pushed over ADS to 1, 100 and 1,000 gRPC clients;
- ``convergence``: a VM added in the emulator until a real Envoy shows it;
- ``footprint``: resident memory of ``gce-plugin run`` with 10,000 upstreams and 100 clients;
- ``rollout``: a rolling replace of a managed group through a real Envoy, health mapping on vs off.

Each scenario runs in a child process of its own; results go to ``bench/results/<scenario>.json``
and a table on stdout. Exit status: non-zero only when a scenario crashed or a correctness check
failed; a missed performance target is reported as MISS. Results: ``bench/RESULTS.md``.
"""
