"""`medlt synth`: class-balanced synthetic training sets in the dataset's own format (docs/methods.md).

    quotas.py    parse_quota / class_targets: to_head | to_count:N | to_ratio:R
    jobs.py      the job list (one per image: label, id, noise seed), single-label round-robin and
                 multi-label greedy rules, fixed batches, rank sharding
    plan.py      build_plan, DIR/plan.json (counts, settings, job fingerprint), resume check, rich table
    writers.py   output layout and writing per format through medlt.data.io (PNG / DICOM / JPG / NIfTI)
    manifest.py  DIR/manifest.csv, DIR/merged.csv (+ merged.root.txt, merged.recipe.yaml)
    generate.py  run_synth(): plan -> generate (resumable, sharded, optional quality filter) -> manifests
    cli.py       the `medlt synth` verb
"""
