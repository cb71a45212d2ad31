"""Pretrained weights: resolve the ``weights`` argument, read, convert, download.

``resolve`` (the ``weights`` argument, the manifest, cache and loading),
``convert`` (pycls / torchvision / tf-keras weights onto the Keras layers),
``torch_checkpoint`` (a torch-free reader that never runs code from the file)
and ``download`` (checked downloads with deadlines).
"""
