"""The local directory backend: a store is a folder of checked logs and caches."""
