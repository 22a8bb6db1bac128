"""kopf handlers: the only package that imports kopf. Thin: parse, observe, decide, act once, write."""
