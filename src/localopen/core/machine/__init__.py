"""This machine: hardware, CPU features, memory bandwidth, system libraries."""
