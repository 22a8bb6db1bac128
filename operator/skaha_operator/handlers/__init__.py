"""kopf handlers, the only package that imports kopf: parse, observe, decide, act once, write."""
