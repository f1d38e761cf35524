"""fxrep: collapse over-parameterized training-time blocks into plain, exact inference convolutions."""
