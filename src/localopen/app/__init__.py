"""The application layer: the product's operations, called by every face (GUI, CLI).

No Qt and no llama_cpp here (tests/test_layers.py checks it). Faces render and format what
these functions return; none computes a product fact (fit, verdict, grade, result) itself.
"""
