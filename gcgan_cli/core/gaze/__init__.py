"""A gaze estimator that measures what generated data is worth: angles, sources, networks, fitting."""
