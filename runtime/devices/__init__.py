"""Which machine this is and how to use it: board profiles (data in boards/), the first-use autotune
that times each exported form, the fixed benchmark workload, and per-stage timing.
"""
