"""The tests' calibration: a handful of tiny shapes measured for real, quick but still ordered."""

from localopen.core.gguf.shapes import DenseShape
from localopen.core.options import BenchParams

# Small and quick, but the largest (~60 MB as Q4_K_M) is well beyond a CPU cache: with every shape
# cache-resident, generation time followed layer count alone and the fit found no bandwidth term
# (clean-clone CI runs failed so: 7 MB read faster than 2.7 MB).
TINY_SHAPES = [
    (DenseShape("cal-a", 2, 256, 512, 4, 4, 1024), "Q4_K_M"),
    (DenseShape("cal-b", 6, 256, 512, 4, 4, 1024), "Q4_K_M"),
    (DenseShape("cal-c", 2, 2048, 5632, 16, 4, 1024), "Q4_K_M"),
    (DenseShape("cal-c", 2, 2048, 5632, 16, 4, 1024), "Q8_0"),
]
# Short, but not so short that one disturbed millisecond decides a shape's figures (the fit then
# rejects them as inconsistent): three repetitions of a 128-token prompt.
TINY_PARAMS = BenchParams(n_prompt=128, n_gen=16, reps=3)
