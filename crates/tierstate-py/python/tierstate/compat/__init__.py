"""Drop-in APIs of the reference systems, on tierstate: ``tierstate.compat.almanak``."""
