"""Background jobs, batches and distributed runs of the tracker (see ``docs/jobs.md``).

* :mod:`.spec`     job spec YAML -> validated :class:`JobSpec` (errors name file and field)
* :mod:`.status`   status.json (atomic rewrites), ``died`` detection
* :mod:`.preflight` what would fail after training (inputs, adapter options, folders, CUDA), checked first
* :mod:`.lock`     flock-based worker and shot locks that survive a crashed holder
* :mod:`.worker`   runs one job directory (the one code path of run / submit / batch / Ray)
* :mod:`.runner`   job directories: prepare, detached worker, cancel, resume, wait
* :mod:`.client`   the API for host plugins and the CLI (no torch import)
* :mod:`.batch`    many jobs, one at a time or N in parallel, one GPU at a time by default
* :mod:`.ray_executor`  the same jobs as Ray tasks on a cluster
"""
