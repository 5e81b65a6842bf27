"""The odm benchmark: odm against raw PyMongo async, Motor, Beanie and ODMantic, plus the
MongoDB ODM Performance Benchmark spec. Run ``python -m bench --help``; see bench/README.md."""
