"""One small controller per kind: observe, decide (reconcile/), act, write. No kopf here.

A controller's `step(body, ctx)` runs for a live object and for one being deleted alike: deletion
is an observation the pure decision acts on (docs/design.md §4.6), and the step says when to look
again and, for a deleting object, whether everything it launched is released.
"""
