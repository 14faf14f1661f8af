"""Service mode: the scheduler, the HTTP API, Prometheus metrics and the dashboard.

`app` composes them (`coinharvest run`, `coinharvest serve`); nothing below this package
imports it. Importing the package itself imports nothing heavy.
"""
