"""The folder source kind (see ``units``): claimed files as units of work."""
