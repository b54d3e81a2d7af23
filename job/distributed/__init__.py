"""Where a run trains: devices and strategies, multi-worker clusters (TF_CONFIG, Kubernetes Indexed Jobs) and
the local launcher. Imports job.errors, and job.train.rundir (the run directory's file names) inside the
functions of the other workers' branch.
"""
