"""Side-by-side benchmarks of sampflow's hub, client and rules engine (issue 5).

Run ``python -m benchmarks --quick`` (about two minutes) or ``python -m benchmarks`` (fuller).
Each hub under test runs as its own subprocess with its own temporary lockfile, is stopped by
its PID and killed when it overruns a time limit; every load generator that could hang runs in a
subprocess with a time limit too, and a hub that fails or hangs gets that written in its cell.

Modules: `hubs` (starting and stopping sampflow's, pyvo's and JSAMP's hubs), `calcstorm`
(part 1), `pyclients` (part 2), `scale` (part 3), `engine` (part 4), `report` (results.md and
the plot), `__main__` (the command line).
"""
