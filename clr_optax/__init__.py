"""clr_optax: cyclical learning rates for JAX, as Optax schedules."""

__version__ = "0.1.0"
