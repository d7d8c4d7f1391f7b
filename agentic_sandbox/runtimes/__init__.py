"""Runtime drivers behind one narrow protocol: Docker, and the in-memory fake for unit tests."""
