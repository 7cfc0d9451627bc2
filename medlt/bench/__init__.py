"""`medlt bench`: methods x seeds evidence benchmark with controls, one oracle and paired intervals.

Modules: methods (registered method names -> regularizers), presets (cpu / gpu sizes), copies
(the copies control manifest), cells (the plan of run folders, done markers, running one cell),
paired_mean (seed-averaged paired bootstrap differences), table (bench.json / .md / .html), cli.
"""
