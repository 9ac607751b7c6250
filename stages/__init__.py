"""Thin DVC stage entry points: ``python -m stages.<name>``. Arguments, I/O, a call into galaxy_xai."""

import os

# Before any stage imports TensorFlow: keep its C++ start-up chatter (no CUDA here, CPU features)
# out of the one-line-per-step logs. Users can still set their own level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
