"""Where thing used to be."""
