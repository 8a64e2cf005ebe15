"""The Flax reproduction of Smith (2015), "Cyclical Learning Rates for Training Neural Networks"."""
