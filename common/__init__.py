"""Leaf modules any layer may import (blocks, modelsearch, components, pipelines).

They import nothing from the project and nothing heavy, so the lowest layer can use them and the CLI
can import them before TensorFlow.
"""
