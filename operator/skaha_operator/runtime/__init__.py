"""The kopf runtime, the only package that imports kopf.

It registers the same handlers for every kind from one registry (controllers/registry.py), keeps
kopf's bookkeeping in memory, feeds a watch cache, runs each object's step under a per-object lock
(driver.py) and turns a step's "look again in N s" into an in-memory wake-up, or, for an object
being deleted, into kopf's retry of the delete handler until the controller says released.
"""
