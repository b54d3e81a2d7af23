"""What the job trains and tests on: datasets (IDX, npz, the bundled sample), labelled image folders, the
image sets and photo renders it writes, and the synthetic samples training adds (augmentation, outliers,
letters, numbers, segmentation crops). Imports mnist_predict, never job.train.
"""
