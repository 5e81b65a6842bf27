"""Document declarations: the metaclass, options, fields, indexes and change tracking."""
