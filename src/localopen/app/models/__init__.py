"""The models on this machine and where they come from: the library and its listing, downloads (the
queue, pull), other apps' models, the Hub search, grading."""
