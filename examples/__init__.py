"""Example applications built on odm (not installed with the package)."""
