"""The review loop: the rows a person should look at, their labels back into a training folder
(queue.py), and a review threshold with a guarantee on images like a labelled folder's (threshold.py)."""
