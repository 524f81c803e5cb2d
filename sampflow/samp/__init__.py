"""sampflow.samp: the embedded SAMP 1.3 implementation."""
