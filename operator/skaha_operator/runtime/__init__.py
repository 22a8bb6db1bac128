"""The runtime, the only package that imports kopf.

kopf runs the process: start-up, clean-up, signals and the liveness probe (startup.py, run.py).
The objects are the runtime's own: it lists and watches every kind from one registry
(controllers/registry.py) into a cache (watch.py), runs each object's step under a per-object
lock (driver.py), and turns a step's "look again in N s" into an in-memory wake-up
(requeue.py), for a live object as for one being released.
"""
