"""Training a run: the run config (resolved once), the zoo, losses, the training loop, fine-tuning,
calibration, the run directory, plots and experiments (cv, sweep, compare). Imports job.data and
job.distributed.
"""
